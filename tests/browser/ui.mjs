// Opens camrouter's web UI in headless Chromium and prints what a person sees
// in the stream table as JSON: [{stream, producers, consumers}].
// Usage: node ui.mjs URL [screenshot.png]
import { chromium } from 'playwright-core';

const [url, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
try {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForSelector('#streams tr', { timeout: 10000 });
  // The page refreshes every 3 s; wait for a running producer when asked to.
  if (process.env.WAIT_FOR) {
    await page.waitForFunction((t) => document.body.innerText.includes(t), process.env.WAIT_FOR, { timeout: 15000 });
  }
  const rows = await page.$$eval('#streams tr', (trs) => trs.map((tr) => {
    const td = tr.querySelectorAll('td');
    return { stream: td[0].innerText, producers: td[1].innerText, consumers: td[2].innerText };
  }));
  const info = await page.$eval('#info', (e) => e.innerText);
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  console.log(JSON.stringify({ rows, info, errors }));
} finally {
  await browser.close();
}
