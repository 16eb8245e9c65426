#!/bin/sh
# Installs the npm dependencies when node_modules is missing or older than the lockfile, so
# `npm start` and `npm test` work straight from a fresh clone. npm records what it installed in
# node_modules/.package-lock.json; a lockfile newer than that record means the tree is stale.
# `npm ci` installs exactly the committed lockfile and never rewrites it, so a clone stays clean.
set -e
cd "$(dirname "$0")/.."

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "deps: installing npm dependencies (npm ci)"
  ci_log=$(mktemp)
  if ! npm ci --no-audit --no-fund >"$ci_log" 2>&1; then
    cat "$ci_log"
    rm -f "$ci_log"
    echo "deps: npm ci failed: package-lock.json must match package.json (after changing dependencies, commit the lockfile npm install writes)" >&2
    exit 1
  fi
  grep -v '^npm warn' "$ci_log" || true
  rm -f "$ci_log"
  touch node_modules/.package-lock.json
fi
