// Drives one camrouter page in headless Chromium for tests/e2e/test_webui.py.
// Usage: node webui.mjs '<json job>'
//   job: {url, size: [w, h], wait: "<js expression>", timeout_ms, steps: [...],
//         eval: "<js expression>", shot: "file.png", permissions: [...],
//         dialogs: [answers to prompt()/confirm(), in order; true accepts],
//         init: "<script run before the page's own>"}
//   steps: {click: sel} | {fill: [sel, text]} | {wait: expr} | {eval: expr}
// Prints JSON {value, errors, external, requests}: `errors` are console
// errors and uncaught exceptions, `external` every request that left 127.0.0.1.
import { chromium } from 'playwright-core';

const job = JSON.parse(process.argv[2]);
const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'];
if (job.fake_media) args.push('--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream');
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args });
const out = { errors: [], external: [], requests: [], steps: [] };
try {
  const [w, h] = job.size || [1280, 800];
  const context = await browser.newContext({
    viewport: { width: w, height: h },
    permissions: job.permissions || [],
  });
  const page = await context.newPage();
  // A script run in the page before its own (to fake what this browser lacks or does).
  if (job.init) await page.addInitScript(job.init);
  page.on('console', (m) => {
    if (m.type() === 'error') out.errors.push(`console: ${m.text()} (${m.location().url || 'page'})`);
  });
  page.on('pageerror', (e) => out.errors.push(`exception: ${e}`));
  page.on('request', (r) => {
    const u = new URL(r.url());
    out.requests.push(r.url());
    if (!['blob:', 'data:'].includes(u.protocol) && u.hostname !== '127.0.0.1') out.external.push(r.url());
  });
  const answers = [...(job.dialogs || [])];
  page.on('dialog', (d) => {
    const a = answers.shift();
    if (a === false || a === undefined) d.dismiss();
    else d.accept(typeof a === 'string' ? a : undefined);
  });
  const timeout = job.timeout_ms || 30000;
  await page.goto(job.url);
  if (job.wait) await page.waitForFunction(job.wait, null, { timeout, polling: 200 });
  for (const s of job.steps || []) {
    if (s.click) await page.click(s.click);
    if (s.fill) await page.fill(s.fill[0], s.fill[1]);
    if (s.press) await page.press(s.press[0], s.press[1]);
    if (s.wait) await page.waitForFunction(s.wait, null, { timeout, polling: 200 });
    if (s.eval) out.steps.push(await page.evaluate(s.eval));
  }
  if (job.eval) out.value = await page.evaluate(job.eval);
  if (job.shot) await page.screenshot({ path: job.shot, fullPage: !!job.full_page });
} catch (e) {
  out.failure = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
