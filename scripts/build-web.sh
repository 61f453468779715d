#!/usr/bin/env bash
# Builds the web interface (web/ → web/dist) only when something it is built from changed
# since the last build; `make run` and `make test` call it. Needs Node.js 18+ and npm.
#   scripts/build-web.sh          build if needed
#   scripts/build-web.sh --force  build anyway
set -euo pipefail
cd "$(dirname "$0")/../web"

stamp=dist/.build-stamp
# Everything the bundle depends on; node_modules follows package-lock.json.
inputs() {
  find src -type f | LC_ALL=C sort
  ls index.html package.json package-lock.json vite.config.ts tsconfig.json postcss.config.cjs 2>/dev/null
}
digest=$(inputs | xargs sha256sum | sha256sum | cut -d' ' -f1)

if [[ "${1:-}" != --force && -f $stamp && $(cat "$stamp") == "$digest" && -f dist/index.html ]]; then
  echo "web/dist is up to date"
  exit 0
fi

command -v npm >/dev/null || { echo "npm is missing: install Node.js 18+ (apt-get install nodejs npm)" >&2; exit 1; }

# node_modules is refreshed when the lock changed since the last install (its hash is kept
# next to the modules); without a lock (first checkout of a new dependency) npm install makes one.
lock_stamp=node_modules/.cloudpbx-lock-sha256
if [[ ! -f package-lock.json ]]; then
  npm install --no-audit --no-fund --loglevel=error
elif [[ ! -f $lock_stamp || $(cat "$lock_stamp") != $(sha256sum package-lock.json | cut -d' ' -f1) ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
sha256sum package-lock.json | cut -d' ' -f1 > "$lock_stamp"

npm run --silent build
echo "$digest" > "$stamp"
echo "built web/dist"
