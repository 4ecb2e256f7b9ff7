#!/usr/bin/env bash
# Builds camrouter's Debian packages into target/debian/ with plain dpkg-deb:
#   camrouter                   the host (web UI embedded), default config, systemd unit, man page
#   camrouter-plugin-<module>   one per plugin, /usr/lib/camrouter/plugins/libcamrouter_plugin_<module>.so
#   camrouter-plugins-all       depends on every plugin package
# The core provides camrouter-abi-0.N (plugin-api 0.N.x) and camrouter-abi-0.N-<layout>
# (a digest of plugin-api/src/abi.rs), and every plugin package depends on both, so
# apt never installs a plugin beside a core that would refuse it: the host checks
# the exact type layouts at load, and a method appended within 0.N already fails
# that check for plugins built before it (docs/plugins.md).
#
# Plugins are found in the workspace, not listed here: every package with a
# cdylib target named camrouter_plugin_<module> is one. A plugin's library
# crate may add Debian relations in its Cargo.toml:
#   [package.metadata.deb]
#   recommends = "ffmpeg"
#
# Usage: packaging/deb/build.sh [--profile release|dev|NAME] [--no-build] [--out DIR] [--compress xz|gzip|none]
#   --profile   cargo profile to build and package (default: release)
#   --no-build  package what target/<profile>/ already holds (tests use this)
#   --out       output dir (default: target/debian)
#   --compress  dpkg-deb's compressor (default: xz; tests take gzip, faster)
# Needs: cargo, jq, dpkg-deb; dpkg-shlibdeps (dpkg-dev) for exact library
# dependencies. Set MAINTAINER="Name <mail>" to sign the packages as someone.
set -euo pipefail
umask 022

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
profile=release
build=1
out=""
compress=xz
while [ $# -gt 0 ]; do
  case $1 in
    --profile) profile=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --out) out=$2; shift 2 ;;
    --compress) compress=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
for tool in cargo jq dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "build.sh: needs $tool" >&2; exit 1; }
done

target_dir=${CARGO_TARGET_DIR:-$root/target}
case $profile in
  release) sub=release ;;
  dev | debug) profile=dev; sub=debug ;;
  *) sub=$profile ;;
esac
bin_dir=$target_dir/$sub
out=${out:-$target_dir/debian}
maintainer=${MAINTAINER:-"camrouter maintainers <maintainers@camrouter.example.org>"}
arch=$(dpkg --print-architecture)

meta=$(cd "$root" && cargo metadata --no-deps --format-version 1)
pkg_field() { jq -r --arg n "$1" ".packages[] | select(.name == \$n) | $2" <<<"$meta"; }
version=$(pkg_field camrouter .version)
api_version=$(pkg_field camrouter-plugin-api .version)
IFS=. read -r api_major api_minor _ <<<"$api_version"
# abi_stable's rule: 0.MINOR (or MAJOR from 1.0 on) decides compatibility.
if [ "$api_major" = 0 ]; then abi="0.$api_minor"; else abi=$api_major; fi
api_dir=$(dirname "$(pkg_field camrouter-plugin-api .manifest_path)")
abi_exact="$abi-$(sha256sum "$api_dir/src/abi.rs" | cut -c1-8)"

# module <TAB> cdylib package <TAB> library package (for description, README, relations)
plugins=$(jq -r '
  .packages as $all
  | .packages[]
  | . as $p
  | .targets[]
  | select((.kind | index("cdylib")) and (.name | startswith("camrouter_plugin_")))
  | [ (.name | ltrimstr("camrouter_plugin_")),
      $p.name,
      ([$p.dependencies[] | select(.path != null and .name != "camrouter-plugin-api") | .name][0] // $p.name) ]
  | @tsv' <<<"$meta" | sort)
[ -n "$plugins" ] || { echo "build.sh: no plugin found in the workspace" >&2; exit 1; }

if [ "$build" = 1 ]; then
  args=(-p camrouter)
  while IFS=$'\t' read -r _ cdylib _; do args+=(-p "$cdylib"); done <<<"$plugins"
  (cd "$root" && cargo build --profile "$profile" "${args[@]}")
fi

stage=$out/stage
rm -rf "$stage"
mkdir -p "$stage"
rm -f "$out"/camrouter*_"$arch".deb

# Reproducible dates: the last commit's, unless SOURCE_DATE_EPOCH says otherwise.
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}
changelog_date=$(date -u -R -d "@$epoch")
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)

# Licenses of everything linked in, for the copyright file.
crates=$(cd "$root" && cargo metadata --format-version 1 --filter-platform "$(rustc -vV | sed -n 's/^host: //p')" \
  | jq -r '.workspace_members as $ws | .packages[] | select(.id as $id | $ws | index($id) | not)
           | " \(.name) \(.version): \(.license // "see crate")"' | sort -u)

shlibs() {
  # dpkg-shlibdeps wants a debian/control to exist; any will do.
  local tmp dep
  tmp=$(mktemp -d)
  mkdir "$tmp/debian"
  printf 'Source: camrouter\n\nPackage: camrouter\nArchitecture: any\n' >"$tmp/debian/control"
  if command -v dpkg-shlibdeps >/dev/null &&
    dep=$(cd "$tmp" && dpkg-shlibdeps -O -e"$1" 2>/dev/null | sed -n 's/^shlibs:Depends=//p') && [ -n "$dep" ]; then
    echo "$dep"
  else
    echo "build.sh: dpkg-shlibdeps unavailable, library dependencies are a guess" >&2
    echo "libc6, libgcc-s1"
  fi
  rm -rf "$tmp"
}

# Installs the shared doc files of every package.
docs() {
  local pkg=$1 doc=$stage/$1/usr/share/doc/$1
  install -d "$doc"
  {
    cat <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: camrouter

Files: *
Copyright: 2025-$(date -u -d "@$epoch" +%Y) camrouter contributors
License: MIT
Comment: The binaries link these Rust crates statically (name version: license):
 .
EOF
    sed 's/^/ /' <<<"$crates"
    cat <<'EOF'

License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the "Software"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all
 copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
 SOFTWARE.
EOF
  } >"$doc/copyright"
  # Native packaging: the upstream changelog is the Debian one.
  printf 'camrouter (%s) unstable; urgency=medium\n\n  * Built from the camrouter workspace at %s.\n\n -- %s  %s\n' \
    "$version" "$commit" "$maintainer" "$changelog_date" | gzip -9n >"$doc/changelog.gz"
}

# Writes DEBIAN/control (from stdin, Installed-Size added), md5sums, and builds the .deb.
finish() {
  local pkg=$1 dir=$stage/$1 size
  install -d "$dir/DEBIAN"
  size=$(du -sk --exclude=DEBIAN "$dir" | cut -f1)
  { cat; echo "Installed-Size: $size"; } >"$dir/DEBIAN/control"
  (cd "$dir" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | LC_ALL=C sort -z | xargs -0r md5sum) >"$dir/DEBIAN/md5sums"
  find "$dir" -exec touch -h -d "@$epoch" {} +
  dpkg-deb --root-owner-group -Z"$compress" --build "$dir" "$out/${pkg}_${version}_${arch}.deb" >/dev/null
  echo "$out/${pkg}_${version}_${arch}.deb"
}

strip_into() { # src dest mode
  install -D -m "$3" "$1" "$2"
  strip --remove-section=.comment --remove-section=.note --strip-unneeded "$2"
}

# --- camrouter ---------------------------------------------------------------
core=$stage/camrouter
strip_into "$bin_dir/camrouter" "$core/usr/bin/camrouter" 0755
install -D -m 0644 "$here/camrouter.yaml" "$core/etc/camrouter/camrouter.yaml"
install -D -m 0644 "$here/camrouter.service" "$core/lib/systemd/system/camrouter.service"
install -d -m 0755 "$core/usr/share/man/man1"
gzip -9n <"$here/camrouter.1" >"$core/usr/share/man/man1/camrouter.1.gz"
docs camrouter
gzip -9n <"$root/README.md" >"$core/usr/share/doc/camrouter/README.md.gz"
install -d "$core/DEBIAN"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$core/DEBIAN/"
echo /etc/camrouter/camrouter.yaml >"$core/DEBIAN/conffiles"
install -D -m 0644 "$here/lintian-overrides" "$core/usr/share/lintian/overrides/camrouter"
finish camrouter <<EOF
Package: camrouter
Version: $version
Architecture: $arch
Maintainer: $maintainer
Depends: $(shlibs "$core/usr/bin/camrouter"), adduser
Recommends: camrouter-plugin-rtsp
Suggests: camrouter-plugins-all, ffmpeg
Provides: camrouter-abi-$abi, camrouter-abi-$abi_exact
Section: video
Priority: optional
Description: camera streaming server, a drop-in for go2rtc
 camrouter reads go2rtc's configuration, serves its HTTP API on port 1984 and
 an RTSP server on 8554, with a web UI. Every protocol is a plugin, packaged
 as camrouter-plugin-<module>; a plugin is loaded only when its module is
 listed in app.modules of /etc/camrouter/camrouter.yaml.
 .
 This package runs camrouter as a hardened systemd service under its own
 user, and provides the plugin ABI camrouter-abi-$abi, exactly
 camrouter-abi-$abi_exact.
EOF

# --- camrouter-plugin-<module> -----------------------------------------------
all_deps="camrouter (= $version)"
while IFS=$'\t' read -r module cdylib lib; do
  pkg=camrouter-plugin-$module
  all_deps+=", $pkg (= $version)"
  dir=$stage/$pkg
  so=libcamrouter_plugin_$module.so
  strip_into "$bin_dir/$so" "$dir/usr/lib/camrouter/plugins/$so" 0644
  docs "$pkg"
  lib_dir=$(dirname "$(pkg_field "$lib" .manifest_path)")
  [ -f "$lib_dir/README.md" ] && gzip -9n <"$lib_dir/README.md" >"$dir/usr/share/doc/$pkg/README.md.gz"
  summary=$(pkg_field "$lib" '.description // empty' | sed 's/^camrouter //')
  relation() { pkg_field "$lib" ".metadata.deb.$1 // empty"; }
  depends="camrouter-abi-$abi, camrouter-abi-$abi_exact, $(shlibs "$dir/usr/lib/camrouter/plugins/$so")"
  extra=$(relation depends)
  [ -n "$extra" ] && depends+=", $extra"
  {
    cat <<EOF
Package: $pkg
Source: camrouter
Version: $version
Architecture: $arch
Maintainer: $maintainer
Depends: $depends
EOF
    for field in Recommends Suggests; do
      value=$(relation "${field,,}")
      [ -n "$value" ] && echo "$field: $value"
    done
    cat <<EOF
Enhances: camrouter
Section: video
Priority: optional
Description: camrouter module $module
EOF
    {
      echo "${summary:-The $module module of camrouter.}"
      echo .
      echo "Installs /usr/lib/camrouter/plugins/$so; camrouter loads it once" \
        "\"$module\" is listed in app.modules of /etc/camrouter/camrouter.yaml."
    } | fold -s -w 76 | sed 's/ *$//; s/^/ /'
  } | finish "$pkg"
done <<<"$plugins"

# --- camrouter-plugins-all ---------------------------------------------------
docs camrouter-plugins-all
finish camrouter-plugins-all <<EOF
Package: camrouter-plugins-all
Source: camrouter
Version: $version
Architecture: $arch
Maintainer: $maintainer
Depends: $all_deps
Section: metapackages
Priority: optional
Description: camrouter with every first-party plugin
 Depends on camrouter and on each camrouter-plugin-<module> package built
 from the same source. Modules are still loaded only when listed in
 app.modules.
EOF
rm -rf "$stage"
