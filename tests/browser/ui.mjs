// Opens camrouter's web UI in headless Chromium and prints what a person sees
// in the stream list as JSON: [{stream, producers, consumers}].
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
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`${m.text()} (${m.location().url})`); });
  await page.goto(url);
  await page.waitForSelector('#streams .stream', { timeout: 10000 });
  // The page refreshes every 3 s; wait for a running producer when asked to.
  if (process.env.WAIT_FOR) {
    await page.waitForFunction((t) => document.body.innerText.includes(t), process.env.WAIT_FOR, { timeout: 15000 });
  }
  const rows = await page.$$eval('#streams .stream', (cards) => cards.map((c) => ({
    stream: c.querySelector('.name').innerText,
    producers: c.querySelector('.producers-box > div').innerText,
    consumers: c.querySelector('.consumers-box > div').innerText,
  })));
  const info = await page.$eval('#info', (e) => e.innerText);
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  console.log(JSON.stringify({ rows, info, errors }));
} finally {
  await browser.close();
}
