#!/usr/bin/env bash
# Builds the self-contained binary (every first-party plugin linked in, no
# plugin files needed) as a release artifact:
#   target/dist/camrouter-<version>-linux-<arch>   stripped, plus a .sha256
# It is what replaces go2rtc's binary in place (Frigate, Home Assistant add-ons).
#
# Usage: packaging/bundled.sh [--profile NAME]   (default: bundled-release)
set -euo pipefail
umask 022
root=$(cd "$(dirname "$0")/.." && pwd)
profile=bundled-release
while [ $# -gt 0 ]; do
  case $1 in
    --profile) profile=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bundled.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
target_dir=${CARGO_TARGET_DIR:-$root/target}
case $profile in dev | debug) sub=debug ;; release) sub=release ;; *) sub=$profile ;; esac

(cd "$root" && cargo build --profile "$profile" -p camrouter --features bundled)
version=$(cd "$root" && cargo metadata --no-deps --format-version 1 |
  jq -r '.packages[] | select(.name == "camrouter") | .version')
arch=$(uname -m)
dist=$target_dir/dist
mkdir -p "$dist"
out=$dist/camrouter-$version-linux-$arch
strip --remove-section=.comment --remove-section=.note -o "$out" "$target_dir/$sub/camrouter"
chmod 0755 "$out"
(cd "$dist" && sha256sum "$(basename "$out")" >"$(basename "$out").sha256")
echo "$out $(stat -c %s "$out") bytes"
