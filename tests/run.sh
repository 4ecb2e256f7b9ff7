#!/usr/bin/env bash
# Runs every test: Rust unit tests, then end-to-end tests against real peers
# (ffmpeg, Home Assistant's go2rtc-client). Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v openssl >/dev/null || missing+=(openssl)
# Thread backtraces of a server when a test sees it stall (conftest.stacks).
command -v gdb >/dev/null || missing+=(gdb)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The web UI in Firefox too (tests/browser/firefox.mjs, over WebDriver BiDi).
[ -x /usr/bin/firefox-esr ] || missing+=(firefox-esr)
# And in WebKitGTK, Safari's engine (tests/e2e/webkit.py: WebKitWebDriver's
# MiniBrowser on an Xvfb display, driven by selenium from tests/requirements.txt).
[ -x /usr/bin/WebKitWebDriver ] || missing+=(webkit2gtk-driver)
command -v Xvfb >/dev/null || missing+=(xvfb)
command -v node >/dev/null || missing+=(nodejs npm)
# Debian packaging (packaging/deb/build.sh) and its checks.
command -v jq >/dev/null || missing+=(jq)
command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
command -v lintian >/dev/null || missing+=(lintian)
# libopus for the webrtc plugin's AAC → Opus (found through pkg-config at build time).
pkg-config --exists opus 2>/dev/null || missing+=(pkg-config libopus-dev)
# A real RTMP server for the rtmp:// source (tests/e2e/test_rtmp.py).
[ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || missing+=(nginx libnginx-mod-rtmp)
# nginx's stream module terminates TLS in front of it for rtmps:// and rtmpx://.
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)
# STUN and TURN server for WebRTC's stun: candidates and a relayed session
# (tests/e2e/test_webrtc_ice.py); run in the foreground by the test, never as a service.
command -v turnserver >/dev/null || missing+=(coturn)
# The RTSP "camera" of the tests: GStreamer's RTSP server through python3-gi.
if ! /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import GstRtspServer' 2>/dev/null \
  || ! /usr/bin/python3 -c 'import gi; gi.require_version("Gst", "1.0"); gi.require_version("GstWebRTC", "1.0"); from gi.repository import Gst, GstWebRTC; Gst.init(None); import sys; sys.exit(0 if all(Gst.ElementFactory.find(e) for e in ("x264enc", "x265enc", "avenc_aac", "rtph264pay", "webrtcbin", "nicesrc")) else 1)' 2>/dev/null; then
  # webrtcbin with libnice (gstreamer1.0-nice) is a second WebRTC stack for
  # the viewer tests (tests/e2e/gst_webrtc_viewer.py: H.265).
  missing+=(python3-gi gir1.2-gst-rtsp-server-1.0 gir1.2-gst-plugins-bad-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-nice)
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
# Browser tests drive the system Chromium with playwright-core and the system
# Firefox with puppeteer-core (no browser download).
if [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -d tests/browser/node_modules/puppeteer-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund)
fi
# node-media-server 4, a real Enhanced RTMP server for AV1 (tests/e2e/test_av1.py).
if [ ! -d tests/nms/node_modules/node-media-server ]; then
  (cd tests/nms && npm ci --no-audit --no-fund)
fi

# go2rtc-client (Home Assistant's) needs Python >= 3.12.
py=""
for c in /root/.pyenv/versions/3.12.*/bin/python3.12 python3.13 python3.12 python3; do
  if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
    py=$(command -v "$c"); break
  fi
done
if [ -z "$py" ]; then
  echo "tests/run.sh: need Python >= 3.12 for go2rtc-client" >&2
  exit 1
fi
venv=tests/.venv
# (Re)installed when missing or when tests/requirements.txt changed since.
if [ ! -x "$venv/bin/python" ] || ! cmp -s tests/requirements.txt "$venv/requirements.txt"; then
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  "$venv/bin/pip" install -q -r tests/requirements.txt
  cp tests/requirements.txt "$venv/requirements.txt"
fi

cargo build --workspace
cargo build -p camrouter --features bundled --profile bundled
cargo test --workspace
# Two workers, each file on one of them (module fixtures run once): most
# tests wait on real-time media, so two at a time nearly halve the run.
# Each worker takes ports from its own share (tests/e2e/conftest.py).
"$venv/bin/python" -m pytest -q -n 2 --dist loadfile tests/e2e
