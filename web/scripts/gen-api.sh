#!/bin/sh
# Regenerate the typed API client's schema (src/api/schema.d.ts) from the FastAPI app's
# OpenAPI document, the contract between the UI and the server (ENGINEERING.md §5).
#   sh scripts/gen-api.sh          rewrite src/api/schema.d.ts
#   sh scripts/gen-api.sh --check  fail when the committed file is out of date
# The generated file is committed so that building the UI never needs Python.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$here/.." && pwd)
python=${PYTHON:-"$repo/.venv/bin/python"}
target="$here/src/api/schema.d.ts"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A throw-away data dir: building the app must not touch the real var/ (secret key, dirs).
CLOUDPBX_DATA_DIR="$tmp/data" "$python" -c "
import json, sys
from cloudpbx.app import create_app
json.dump(create_app().openapi(), sys.stdout, ensure_ascii=False, indent=1, sort_keys=True)
" > "$tmp/openapi.json"
"$here/node_modules/.bin/openapi-typescript" "$tmp/openapi.json" -o "$tmp/schema.d.ts" >/dev/null

if [ "${1:-}" = "--check" ]; then
    if ! cmp -s "$tmp/schema.d.ts" "$target"; then
        echo "web/src/api/schema.d.ts is out of date: run 'npm run gen-api' in web/" >&2
        diff -u "$target" "$tmp/schema.d.ts" | head -40 >&2 || true
        exit 1
    fi
    echo "web/src/api/schema.d.ts is up to date"
else
    cp "$tmp/schema.d.ts" "$target"
    echo "wrote $target"
fi
