"""WebKitGTK, the engine of Safari (but not Safari: no Apple media stack, no
WebRTC in Debian's build), driving camrouter's pages for test_webui.py.

Debian's WebKitWebDriver starts its MiniBrowser on an Xvfb display; Python
selenium talks WebDriver classic to it. That driver has no way to read the
console (no BiDi in this build), so the pages are served from a copy of
www/ (`api.static_dir`) in which every HTML file loads a small hook first
that records console errors, uncaught exceptions and failed loads in
`window.__errors`. Requests are read from the page's resource timing.

`WebKit(free_port).browse(job)` takes the jobs of tests/browser/webui.mjs (url, size, wait,
timeout_ms, steps of click/fill/wait/eval, eval) and returns the same
{value, steps, errors, external, failure}."""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

MINIBROWSER = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser"
DRIVER = "/usr/bin/WebKitWebDriver"

# A script may await up to this long (the tests' `until` polls 30 s); a
# driver command that has no answer after COMMAND_TIMEOUT_S never will.
SCRIPT_TIMEOUT_S = 60
COMMAND_TIMEOUT_S = 90

BROWSER_ENV = {
    # The test machine has no sound card: GStreamer's autoaudiosink would try
    # PulseAudio, JACK, OSS and OpenAL in turn on every video. A fake sink
    # that keeps the clock, as a real one does, takes their place.
    "GST_PLUGIN_FEATURE_RANK": "fakeaudiosink:primary",
}


class Wedged(Exception):
    """The browser stopped answering; the next job needs a new one."""


def available():
    if not (Path(MINIBROWSER).exists() and Path(DRIVER).exists() and shutil.which("Xvfb")):
        return False
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return True


HOOK = """// Test-only (tests/e2e/webkit.py): WebKitWebDriver cannot read the
// console, so this copy of each page records its errors here first.
window.__errors = [];
window.__states = [];
(() => {
  const t0 = performance.now();
  // <video-stream>'s statechange events (they do not bubble; capture sees them).
  window.addEventListener('statechange', (e) => {
    const d = e.detail || {};
    window.__states.push(`${Math.round(performance.now() - t0)} ms ${d.state} ${d.mode || ''} ${d.error || ''}`.trim());
  }, true);
  const error = console.error;
  console.error = function (...args) {
    window.__errors.push('console: ' + args.map(String).join(' '));
    return error.apply(this, args);
  };
  window.addEventListener('error', (e) => {
    const t = e.target;
    window.__errors.push(t && t !== window
      ? `failed to load: ${t.src || t.href || t.tagName}`
      : `exception: ${e.message} (${e.filename}:${e.lineno})`);
  }, true);
  window.addEventListener('unhandledrejection', (e) => {
    window.__errors.push(`exception: ${e.reason && e.reason.stack || e.reason}`);
  });
})();
"""


def hooked_www(root, into):
    """A copy of www/ whose pages load HOOK before anything else."""
    shutil.copytree(root / "www", into)
    (into / "__errors.js").write_text(HOOK)
    for page in into.glob("*.html"):
        text = page.read_text()
        head = text.index("<head>") + len("<head>")
        page.write_text(text[:head] + '\n<script src="__errors.js"></script>' + text[head:])
    return into


class Xvfb:
    """An X display of our own, for MiniBrowser."""

    def __init__(self):
        r, w = os.pipe()
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(w), "-screen", "0", "1600x1200x24", "-nolisten", "tcp"],
            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(w)
        with os.fdopen(r) as f:
            self.display = ":" + f.readline().strip()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class Browser:
    """One MiniBrowser under WebKitWebDriver. Every driver command has a
    deadline (`COMMAND_TIMEOUT_S`): a web process that stops answering (its
    GStreamer pipeline can deadlock the main thread) fails the job instead
    of hanging the test run, and marks the browser `wedged`."""

    def __init__(self, display, port):
        from selenium import webdriver
        from selenium.webdriver.webkitgtk.options import Options
        from selenium.webdriver.webkitgtk.service import Service

        options = Options()
        options.binary_location = MINIBROWSER
        options.add_argument("--automation")
        env = dict(os.environ, DISPLAY=display, **BROWSER_ENV)
        if os.environ.get("WEBKIT_GST_LOG"):
            # Debugging a media failure: WebKit's GStreamer log into this file.
            env.update(GST_DEBUG=os.environ.get("WEBKIT_GST_DEBUG", "2,webkit*:4"),
                       GST_DEBUG_FILE=os.environ["WEBKIT_GST_LOG"], GST_DEBUG_NO_COLOR="1")
        # Its own session, so that quitting kills MiniBrowser and its web
        # processes too, even when the driver no longer answers.
        self.service = Service(executable_path=DRIVER, port=port, env=env,
                               popen_kw={"start_new_session": True})
        self.wedged = False
        self.driver = webdriver.WebKitGTK(options=options, service=self.service)
        self.driver.command_executor.client_config.timeout = COMMAND_TIMEOUT_S
        self.driver.set_script_timeout(SCRIPT_TIMEOUT_S)
        self.driver.set_page_load_timeout(SCRIPT_TIMEOUT_S)

    def quit(self):
        if not self.wedged:
            try:
                self.driver.quit()
            except Exception:  # noqa: BLE001 - killed below in any case
                pass
        proc = self.service.process
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)

    def js(self, expr):
        """The value of a page expression (awaited when it is a promise)."""
        r = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "Promise.resolve().then(() => (0, eval)(arguments[0]))"
            ".then((v) => done({v: v === undefined ? null : v}), (e) => done({e: String(e)}));",
            expr,
        )
        if "e" in r:
            raise RuntimeError(f"{expr[:80]}: {r['e']}")
        return r["v"]

    def wait(self, expr, timeout):
        end = time.monotonic() + timeout
        while True:
            try:
                if self.js(f"!!({expr})"):
                    return
            except RuntimeError:
                pass
            if time.monotonic() > end:
                raise TimeoutError(f"waited {timeout:.0f} s for {expr[:120]}")
            time.sleep(0.2)

    def browse(self, job):
        """Runs one job; a browser that stopped answering is left `wedged`
        (the job's `failure` says where) for the caller to replace."""
        try:
            return self._browse(job)
        except Wedged as e:
            self.wedged = True
            return {"errors": [], "external": [], "steps": [], "failure": f"browser stopped answering: {e}"}

    def _browse(self, job):
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.common.by import By
        from urllib3.exceptions import HTTPError

        out = {"errors": [], "external": [], "steps": []}
        d = self.driver
        timeout = job.get("timeout_ms", 30000) / 1000
        try:
            d.set_window_size(*job.get("size", [1280, 800]))
            d.get(job["url"])
            if job.get("wait"):
                self.wait(job["wait"], timeout)
            for s in job.get("steps", []):
                if "click" in s:
                    d.find_element(By.CSS_SELECTOR, s["click"]).click()
                if "fill" in s:
                    el = d.find_element(By.CSS_SELECTOR, s["fill"][0])
                    d.execute_script(
                        "arguments[0].value = arguments[1];"
                        " arguments[0].dispatchEvent(new Event('input', {bubbles: true}))",
                        el, s["fill"][1])
                if "wait" in s:
                    self.wait(s["wait"], timeout)
                if "eval" in s:
                    out["steps"].append(self.js(s["eval"]))
            if job.get("eval"):
                out["value"] = self.js(job["eval"])
        except (HTTPError, TimeoutException) as e:
            # No answer in time from the driver (HTTP) or the page (a script
            # or a load that never finished): nothing more will come.
            raise Wedged(f"{type(e).__name__}: {e}") from e
        except Exception as e:  # the test reads it from out["failure"]
            out["failure"] = f"{type(e).__name__}: {e}"
        try:
            out["errors"] = self.js("window.__errors || ['no error hook in this page']")
            out["states"] = self.js("window.__states || []")
            urls = self.js("performance.getEntriesByType('resource').map(e => e.name)")
            out["external"] = [u for u in urls if not u.startswith(("blob:", "data:"))
                               and not u.split("/")[2].split(":")[0] == "127.0.0.1"]
        except (HTTPError, TimeoutException) as e:
            raise Wedged(f"reading errors: {type(e).__name__}: {e}") from e
        except Exception as e:
            out.setdefault("failure", f"reading errors: {e}")
        return out


class WebKit:
    """An Xvfb display and a browser on it; a browser that stopped
    answering is killed and the next job gets a new one."""

    def __init__(self, free_port):
        self.free_port = free_port
        self.display = Xvfb()
        self.browser = None

    def browse(self, job):
        if self.browser is None:
            self.browser = Browser(self.display.display, self.free_port())
        out = self.browser.browse(job)
        if self.browser.wedged:
            self.browser.quit()
            self.browser = None
        return out

    def stop(self):
        try:
            if self.browser is not None:
                self.browser.quit()
        finally:
            self.display.stop()
