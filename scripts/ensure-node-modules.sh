#!/bin/sh
# Installs the npm dependencies when node_modules is missing or older than the lockfile, so
# `npm start` and `npm test` work straight from a fresh clone. npm records what it installed in
# node_modules/.package-lock.json; a lockfile newer than that record means the tree is stale.
set -e
cd "$(dirname "$0")/.."

if [ -f package-lock.json ]; then
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "deps: installing npm dependencies (npm ci)"
    ci_log=$(mktemp)
    if npm ci --no-audit --no-fund >"$ci_log" 2>&1; then
      grep -v '^npm warn' "$ci_log" || true
    else
      # npm ci refuses a lockfile that lacks optional platform packages its registry cannot
      # serve; npm install tolerates that and still installs the locked versions.
      grep -m 4 '^npm error [^ ]' "$ci_log" || true
      echo "deps: npm ci failed; retrying with npm install"
      npm install --no-audit --no-fund
    fi
    rm -f "$ci_log"
    touch node_modules/.package-lock.json
  fi
elif [ ! -d node_modules ]; then
  echo "deps: installing npm dependencies (npm install)"
  npm install --no-audit --no-fund
fi
