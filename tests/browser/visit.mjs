// Opens a page in headless Chromium, waits until it sets document.title to
// "done", and prints the page's window.result as JSON.
// Usage: node visit.mjs URL (VISIT_TIMEOUT_MS: how long to wait, default 20000)
import { chromium } from 'playwright-core';

const [url] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
try {
  const page = await browser.newPage();
  await page.goto(url);
  const timeout = Number(process.env.VISIT_TIMEOUT_MS || 20000);
  await page.waitForFunction(() => document.title === 'done', null, { timeout });
  console.log(JSON.stringify(await page.evaluate(() => window.result)));
} finally {
  await browser.close();
}
