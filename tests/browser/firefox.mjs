// Drives one camrouter page in headless Firefox (Debian's firefox-esr, over
// WebDriver BiDi with puppeteer-core; no browser download) for
// tests/e2e/test_webui.py. Same job and output as webui.mjs (Chromium):
// Usage: node firefox.mjs '<json job>'
//   job: {url, size: [w, h], wait: "<js expression>", timeout_ms, steps: [...],
//         eval: "<js expression>", shot: "file.png", fake_media,
//         dialogs: [answers to prompt()/confirm(), in order; true accepts],
//         init: "<script run before the page's own>"}
//   steps: {click: sel} | {fill: [sel, text]} | {wait: expr} | {eval: expr}
// Prints JSON {value, errors, external, requests}: `errors` are console
// errors and uncaught exceptions, `external` every request that left 127.0.0.1.
// A job {visits: [job, ...]} runs each in a new tab of one browser and
// prints {visits: [output, ...]}.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';

const job = JSON.parse(process.argv[2]);
const prefs = {
  // Nothing but the page under test talks to the network.
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'media.gmp-manager.url': '',
  'media.gmp-provider.enabled': false,
  // WebRTC H.264: a user's Firefox downloads Cisco's OpenH264 plugin on its
  // first run, which this offline test cannot (and Debian does not package
  // it). Firefox's other H.264 path, the platform decoder (the system's
  // ffmpeg), is what these turn on: its "hardware" H.264, unblocked.
  'media.webrtc.hw.h264.enabled': true,
  'gfx.blacklist.webrtc.hw.acceleration.h264': 1,
  'gfx.blacklist.webrtc.hw.acceleration.decode': 1,
  'gfx.blacklist.webrtc.hw.acceleration.encode': 1,
  // The tests' server listens on 127.0.0.1 only; Firefox leaves loopback out
  // of its ICE candidates unless told.
  'media.peerconnection.ice.loopback': true,
  'media.peerconnection.ice.obfuscate_host_addresses': false,
};
if (job.fake_media) {
  // Firefox's own fake camera and microphone (a tone), no permission prompt.
  Object.assign(prefs, {
    'media.navigator.streams.fake': true,
    'media.navigator.permission.disabled': true,
  });
}
const profile = mkdtempSync(join(tmpdir(), 'camrouter-firefox-'));
const browser = await puppeteer.launch({
  browser: 'firefox',
  executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
  headless: true,
  userDataDir: profile,
  extraPrefsFirefox: prefs,
});
const version = await browser.version();

async function run(job) {
  const out = { browser: version, errors: [], external: [], requests: [], steps: [] };
  const [w, h] = job.size || [1280, 800];
  const page = await browser.newPage();
  try {
    await page.setViewport({ width: w, height: h });
    // A script run in the page before its own (as webui.mjs's `init`).
    if (job.init) await page.evaluateOnNewDocument(job.init);
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
    const until = (expr) => page.waitForFunction(expr, { timeout, polling: 200 });
    await page.goto(job.url);
    if (job.wait) await until(job.wait);
    for (const s of job.steps || []) {
      if (s.click) await page.click(s.click);
      if (s.fill) {
        // As playwright's fill: the whole value replaced, one input event.
        await page.$eval(s.fill[0], (e, text) => {
          e.value = text;
          e.dispatchEvent(new Event('input', { bubbles: true }));
        }, s.fill[1]);
      }
      if (s.wait) await until(s.wait);
      if (s.eval) out.steps.push(await page.evaluate(s.eval));
    }
    if (job.eval) out.value = await page.evaluate(job.eval);
    if (job.shot) await page.screenshot({ path: job.shot, fullPage: !!job.full_page });
  } catch (e) {
    out.failure = String(e);
  } finally {
    await page.close();
  }
  return out;
}

let out;
try {
  // `visits`: several jobs, one after the other in one browser.
  if (job.visits) {
    out = { browser: version, visits: [] };
    for (const v of job.visits) out.visits.push(await run(v));
  } else {
    out = await run(job);
  }
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
