#!/usr/bin/env bash
# Refreshes static/vendor from the versions pinned in package.json.
# Run it only when bumping a version; the copies are committed and embedded.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npm install --prefix "$tmp" --no-audit --no-fund --ignore-scripts \
  "htmx.org@$(node -p 'require("./package.json").dependencies["htmx.org"]')" \
  "@picocss/pico@$(node -p 'require("./package.json").dependencies["@picocss/pico"]')" >/dev/null
cp "$tmp/node_modules/htmx.org/dist/htmx.min.js" vendor/htmx.min.js
cp "$tmp/node_modules/htmx.org/LICENSE" vendor/htmx.LICENSE
cp "$tmp/node_modules/@picocss/pico/css/pico.min.css" vendor/pico.min.css
cp "$tmp/node_modules/@picocss/pico/LICENSE.md" vendor/pico.LICENSE.md
echo "vendored htmx.org and @picocss/pico into static/vendor"
