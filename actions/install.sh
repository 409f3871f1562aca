#!/usr/bin/env bash
# Builds custody from the very checkout the action runs from, so the binary is pinned to the
# action's own version (the ref in `uses: owner/custody/actions/release@<ref>`), and puts it on
# PATH for the following steps. Reuses a binary already built for this commit in this job.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/custody-$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo local)"
if [ ! -x "$dest/bin/custody" ]; then
  if ! command -v cargo >/dev/null 2>&1; then
    echo "::error::custody needs a Rust toolchain (cargo) on the runner to build itself" >&2
    exit 2
  fi
  cargo install --locked --quiet --path "$root" --root "$dest"
fi
if [ -n "${GITHUB_PATH:-}" ]; then
  echo "$dest/bin" >> "$GITHUB_PATH"
fi
"$dest/bin/custody" --version
