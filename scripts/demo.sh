#!/usr/bin/env bash
# demo.sh [DEMO FLAGS...]: build the client project and run the ecto_sync demo
# against a throwaway cluster (scripts/with-cluster.sh).  Flags go to
# ectosync_demo (--help): --holders N --writers M --duration S --rate R
# --mix insert=3,update=5,move=2,delete=2,join=3 --seed N --posts N
# --modes ectosync,reload,notify.  Exits non-zero when a held value diverges.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -x scripts/deps.sh && "${ECTOSYNC_SKIP_DEPS:-0}" != 1 ]]; then
  scripts/deps.sh >/dev/null
fi
jobs=$(nproc)
make -s -j"$jobs" >/dev/null
cmake -S client -B client/build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build client/build -j"$jobs" --target ectosync_demo >/dev/null
# (with-cluster.sh allows 300 connections: 200 holders + writers fit.)
# One ecto_sync worker per database that uses it: leave room for several.
export ECTOSYNC_CONF="max_worker_processes = 32
${ECTOSYNC_CONF:-}"
exec scripts/with-cluster.sh client/build/demo/ectosync_demo "$@"
