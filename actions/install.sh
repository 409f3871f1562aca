#!/usr/bin/env bash
# Puts custody on PATH for the following steps, pinned to the checkout this script lives in (the
# ref in `uses: owner/custody/actions/release@<ref>`).
#
# A checkout that is a release carries actions/checksums.txt (written by
# .github/workflows/release.yml): the release version, the digest of the source it was built from
# and the sha256 of every release archive. When the checkout's own source has that digest, the
# archive for the runner's OS and architecture is downloaded and checked against the committed
# sha256, which takes seconds. Otherwise (a commit between releases, a platform without a release
# build) custody is built from this checkout with `cargo install`, and the log says so.
# An install is kept per source digest, so a second step in the job reuses it.
#
# Environment:
#   CUSTODY_RELEASE_URL   release host base URL (default: custody's GitHub releases); the
#                         archive is fetched from $CUSTODY_RELEASE_URL/<version>/<archive>
#   CUSTODY_INSTALL_DIR   where installs are kept (default: $RUNNER_TOOL_CACHE/custody, else
#                         ~/.cache/custody/install)
#
# `install.sh --pin VERSION SHA256SUMS` prints a checksums.txt for this checkout (the release
# workflow's use).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
checksums="$root/actions/checksums.txt"
release_url="${CUSTODY_RELEASE_URL:-https://github.com/custody-dev/custody/releases/download}"

log() { printf 'custody install: %s\n' "$*" >&2; }

# sha256sum on Linux and Windows (Git Bash), shasum on macOS: both print "<hex>  <path>".
if command -v sha256sum >/dev/null 2>&1; then sha256=(sha256sum); else sha256=(shasum -a 256); fi
sha256_of() { "${sha256[@]}" "$@"; }

# The digest of what `cargo install` would build: Cargo.toml, Cargo.lock and src/, each file by
# path and content, in byte order of the paths. Needs no git (runners fetch actions as tarballs).
source_digest() {
  (
    cd "$root"
    find Cargo.toml Cargo.lock src -type f -print0 | LC_ALL=C sort -z | xargs -0 "${sha256[@]}"
  ) | sha256_of | cut -c1-64
}

if [ "${1:-}" = "--pin" ]; then
  [ $# -eq 3 ] || { log "usage: install.sh --pin VERSION SHA256SUMS"; exit 2; }
  cat <<EOF
# custody release checksums, written by .github/workflows/release.yml; read by actions/install.sh.
# "version" is the release tag, "source" the sha256 of this checkout's Cargo.toml, Cargo.lock and
# src/ (see source_digest in install.sh); then one "<sha256>  <archive>" line per release archive.
version $2
source $(source_digest)
EOF
  grep -E '^[0-9a-f]{64}  custody-[A-Za-z0-9_.-]+$' "$3"
  exit 0
fi

# The release target for this runner: RUNNER_OS/RUNNER_ARCH on GitHub, uname elsewhere.
runner_os="${RUNNER_OS:-$(uname -s)}"
runner_arch="${RUNNER_ARCH:-$(uname -m)}"
case "$runner_os/$runner_arch" in
  Linux/X64 | Linux/x86_64) target=x86_64-unknown-linux-musl ;;
  Linux/ARM64 | Linux/aarch64) target=aarch64-unknown-linux-musl ;;
  macOS/X64 | Darwin/x86_64) target=x86_64-apple-darwin ;;
  macOS/ARM64 | Darwin/arm64) target=aarch64-apple-darwin ;;
  Windows/X64 | MINGW*/x86_64 | MSYS*/x86_64) target=x86_64-pc-windows-msvc ;;
  *) target="" ;;
esac
case "$target" in
  *windows*) archive="custody-$target.zip" exe=custody.exe ;;
  *) archive="custody-$target.tar.gz" exe=custody ;;
esac

digest="$(source_digest)"
base="${CUSTODY_INSTALL_DIR:-${RUNNER_TOOL_CACHE:+$RUNNER_TOOL_CACHE/custody}}"
base="${base:-${XDG_CACHE_HOME:-$HOME/.cache}/custody/install}"
dest="$base/${digest:0:16}"

finish() {
  if [ -n "${GITHUB_PATH:-}" ]; then echo "$dest/bin" >> "$GITHUB_PATH"; fi
  if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "path=$dest/bin/$exe" >> "$GITHUB_OUTPUT"; fi
  "$dest/bin/$exe" --version
}

if [ -x "$dest/bin/$exe" ]; then
  log "reusing $(cat "$dest/installed-from" 2>/dev/null || echo "the install") at $dest"
  finish
  exit 0
fi

# The release this checkout is, if it is one: same source digest, an archive for this platform.
version="" expected="" why=""
if [ ! -f "$checksums" ]; then
  why="this checkout has no actions/checksums.txt"
else
  version="$(sed -n 's/^version \([A-Za-z0-9._+-]*\)$/\1/p' "$checksums" | head -n1)"
  pinned_source="$(sed -n 's/^source \([0-9a-f]\{64\}\)$/\1/p' "$checksums" | head -n1)"
  if [ -z "$version" ]; then
    why="actions/checksums.txt pins no release yet"
  elif [ "$pinned_source" != "$digest" ]; then
    why="this checkout is not the source of release $version (a commit between releases)"
  elif [ -z "$target" ]; then
    why="no release build for $runner_os/$runner_arch"
  else
    expected="$(awk -v a="$archive" '$2 == a && $1 ~ /^[0-9a-f]+$/ && length($1) == 64 { print $1; exit }' "$checksums")"
    [ -n "$expected" ] || why="release $version has no $archive"
  fi
fi

staging="$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/custody-install.XXXXXX")"
trap 'rm -rf "$staging"' EXIT

if [ -n "$expected" ]; then
  url="$release_url/$version/$archive"
  log "downloading custody $version for $target from $url"
  if ! curl --fail --silent --show-error --location --retry 3 --retry-connrefused --proto '=https,http' \
    --output "$staging/$archive" "$url"; then
    log "could not download $url"
    exit 2
  fi
  actual="$(sha256_of "$staging/$archive" | cut -c1-64)"
  if [ "$actual" != "$expected" ]; then
    log "refusing $archive: sha256 $actual, actions/checksums.txt pins $expected"
    if [ -n "${GITHUB_ACTIONS:-}" ]; then
      echo "::error::custody $archive does not match actions/checksums.txt (sha256 $actual, expected $expected)"
    fi
    exit 1
  fi
  mkdir -p "$staging/unpacked"
  case "$archive" in
    *.zip) unzip -q "$staging/$archive" -d "$staging/unpacked" ;;
    *) tar -xzf "$staging/$archive" -C "$staging/unpacked" ;;
  esac
  binary="$(find "$staging/unpacked" -type f -name "$exe" | head -n1)"
  [ -n "$binary" ] || { log "$archive holds no $exe"; exit 2; }
  mkdir -p "$staging/install/bin"
  mv "$binary" "$staging/install/bin/$exe"
  chmod 0755 "$staging/install/bin/$exe"
  echo "release $version ($archive, sha256 $actual)" > "$staging/install/installed-from"
else
  log "no custody release matches: $why; building it from this checkout with cargo install (minutes)"
  if [ -n "${GITHUB_ACTIONS:-}" ]; then
    echo "::notice::custody is built from source: $why"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    log "building custody needs a Rust toolchain (cargo) on the runner"
    exit 2
  fi
  # The target folder is kept next to the installs: a rebuild for another commit is incremental.
  CARGO_TARGET_DIR="$base/target" cargo install --locked --quiet --path "$root" --root "$staging/install"
  echo "cargo install from $root (source $digest)" > "$staging/install/installed-from"
fi

# Move into place in one rename, so a concurrent or interrupted install never leaves half a binary.
mkdir -p "$base"
if [ ! -e "$dest" ]; then mv "$staging/install" "$dest"; fi
[ -x "$dest/bin/$exe" ] || { log "could not install into $dest"; exit 2; }
log "installed $(cat "$dest/installed-from") at $dest"
finish
