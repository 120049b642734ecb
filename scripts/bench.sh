#!/usr/bin/env bash
# bench.sh [write|sync|latency|all] [--flag value ...]: build the client
# project and print ecto_sync's figures against a throwaway cluster
# (scripts/with-cluster.sh).  Default: all.  See client/bench/main.cpp.
#   write    pgbench: no triggers vs ecto_sync capture vs plpgsql pg_notify (--seconds, --clients, --repeat)
#   sync     sync() vs load() vs SELECT $1::jsonb for 100 and 10,000 posts (--min-time)
#   latency  commit-to-notify p50/p99/max at 100/1,000/10,000 changes/s (--seconds, --rates)
#   interests  the worker's CPU per event as held values grow (--values, --events); the
#            cluster gets room for 100,000 held values
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh ectosync_bench
what=${1:-all}
[[ $# -gt 0 ]] && shift
if [[ $what == interests ]]; then
  export ECTOSYNC_CONF="${ECTOSYNC_CONF:-}
ectosync.max_held_values = 100000
ectosync.held_shared_memory = 256MB"
fi
exec scripts/with-cluster.sh client/build/bench/ectosync_bench "$what" "$@"
