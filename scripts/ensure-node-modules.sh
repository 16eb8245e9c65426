#!/bin/sh
# Installs the npm dependencies when node_modules is missing or older than the lockfile, so
# `npm start` and `npm test` work straight from a fresh clone. npm records what it installed in
# node_modules/.package-lock.json; a lockfile newer than that record means the tree is stale.
set -e
cd "$(dirname "$0")/.."

if [ -f package-lock.json ]; then
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "deps: installing npm dependencies (npm ci)"
    npm ci --no-audit --no-fund
    touch node_modules/.package-lock.json
  fi
elif [ ! -d node_modules ]; then
  echo "deps: installing npm dependencies (npm install)"
  npm install --no-audit --no-fund
fi
