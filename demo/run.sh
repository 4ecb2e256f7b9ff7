#!/usr/bin/env bash
# Builds camrouter and runs it on the demo config (a live ffmpeg test pattern).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ffmpeg >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg
fi
cargo build --release
# A copy of the config, so API edits do not touch the one in the repository.
work=$(mktemp -d)
cp demo/camrouter.yaml "$work/camrouter.yaml"
cd "$work"
exec "$OLDPWD/target/release/camrouter" -c camrouter.yaml
