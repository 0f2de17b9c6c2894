#!/usr/bin/env bash
# CI as it runs after a push: `.ci/run` in a fresh clone of this repository's HEAD,
# RUNS times in a row, each beside two busy loops (the load of a shared 2-core machine).
# Prints one line per run: its exit status and wall time.
#
#   tests/reliability/fresh_clone_ci.sh [RUNS]      (default 3)
set -uo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
runs="${1:-3}"
for n in $(seq 1 "$runs"); do
  python3 -c "while True: pass" & busy1=$!
  python3 -c "while True: pass" & busy2=$!
  dir="$(mktemp -d)"
  git clone -q "$repo" "$dir/clone"
  start=$(date +%s)
  (cd "$dir/clone" && ./.ci/run > "$dir/ci.log" 2>&1)
  status=$?
  seconds=$(( $(date +%s) - start ))
  kill "$busy1" "$busy2"
  echo "run $n of $runs: exit $status in ${seconds} s ($(git -C "$dir/clone" rev-parse --short HEAD)); $(tail -n 1 "$dir/ci.log")"
  [ "$status" -eq 0 ] && rm -rf "$dir" || echo "  its log: $dir/ci.log"
done
