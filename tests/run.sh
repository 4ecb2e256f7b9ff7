#!/usr/bin/env bash
# Runs every test: Rust unit tests, then end-to-end tests against real peers
# (ffmpeg, Home Assistant's go2rtc-client). Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v openssl >/dev/null || missing+=(openssl)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs npm)
# The RTSP "camera" of the tests: GStreamer's RTSP server through python3-gi.
if ! /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import GstRtspServer' 2>/dev/null \
  || ! /usr/bin/python3 -c 'import gi; gi.require_version("Gst", "1.0"); from gi.repository import Gst; Gst.init(None); import sys; sys.exit(0 if all(Gst.ElementFactory.find(e) for e in ("x264enc", "x265enc", "avenc_aac", "rtph264pay")) else 1)' 2>/dev/null; then
  missing+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav)
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
# Browser tests drive the system Chromium with playwright-core (no browser download).
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund)
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
"$venv/bin/python" -m pytest -q tests/e2e
