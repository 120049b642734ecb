#!/usr/bin/env bash
# demo.sh [DEMO FLAGS...]: build the client project and run the ecto_sync demo
# against a throwaway cluster (scripts/with-cluster.sh).  Flags go to
# ectosync_demo (--help): --holders N [--connections C] --writers M --duration S --rate R
# --mix insert=3,update=5,move=2,delete=2,join=3 --seed N --posts N
# --modes ectosync,reload,notify.  Exits non-zero when a held value diverges.
#
# demo.sh --soak SECONDS: the random workload for that long with the worker
# terminated every 3 s, one SIGKILL (crash reset) and one server restart;
# at the end every holder must equal a fresh load (client/tests Soak.*).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == --soak ]]; then
  seconds=${2:?usage: demo.sh --soak SECONDS}
  scripts/build.sh fault_test
  export ECTOSYNC_SOAK_SECONDS=$seconds
  exec scripts/with-cluster.sh client/build/tests/fault_test --gtest_filter='Soak.*'
fi
scripts/build.sh ectosync_demo
# Room for many held values (--holders 10000 --connections 8): 32,768
# interest entries of 1.5 kB take 48 MB of shared memory.
export ECTOSYNC_CONF="${ECTOSYNC_CONF:-}
ectosync.max_held_values = 32768"
# (with-cluster.sh allows 300 connections: 200 holders + writers fit.)
exec scripts/with-cluster.sh client/build/demo/ectosync_demo "$@"
