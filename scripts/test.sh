#!/usr/bin/env bash
# test.sh: build everything and run every test: pg_regress and isolation
# specs (make installcheck), the CMake/GoogleTest unit and libpq tests, and
# the check that CREATE EXTENSION refuses to run without preloading.  Each
# server-side suite runs against its own throwaway cluster
# (scripts/with-cluster.sh).  Exits non-zero on any failure or regression diff.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh

status=0
passed=0
failed=0
run() {
  echo "== $1"
  shift
  if "$@"; then
    passed=$((passed + 1))
  else
    echo "== FAILED: $*" >&2
    status=1
    failed=$((failed + 1))
  fi
}

installcheck() {
  if ! make -s installcheck; then
    for f in build/regress/regression.diffs build/isolation/regression.diffs; do
      [[ -s $f ]] && cat "$f"
    done
    return 1
  fi
}

no_preload_check() {
  local out
  out=$(psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose \
    -c 'CREATE EXTENSION ecto_sync' 2>&1) && { echo "CREATE EXTENSION succeeded without preload" >&2; return 1; }
  if grep -q '55000' <<<"$out" && grep -q 'shared_preload_libraries' <<<"$out"; then
    echo "ok: CREATE EXTENSION without preload fails with 55000"
  else
    echo "unexpected error: $out" >&2
    return 1
  fi
}

run "pg_regress and isolation" scripts/with-cluster.sh bash -c "$(declare -f installcheck); installcheck"
run "client tests (ctest)" scripts/with-cluster.sh ctest --test-dir client/build --output-on-failure
# Overload and tiny memory: a 64 kB queue and a worker that waits 100 ms
# for batches (the queue overflows: RELOAD markers), a 1 MB row cache (it
# evicts), a 64-event log (events expire: ZE001), 50 events per
# transaction, interest entries for 3 held values (the others listen to
# their tables), 256 kB for shared held values (sharing fails, holders go
# on alone), rows read ahead only for tables used within the last second
# (the rest are read by the holders, on cache misses).  The holders must
# still converge;
# ECTOSYNC_EXPECT_PRESSURE=1 makes the tests check that the pressure really
# occurred.
ECTOSYNC_CONF="ectosync.queue_size = 64kB
ectosync.cache_size = 1MB
ectosync.event_log_size = 64
ectosync.max_xact_events = 50
ectosync.max_held_values = 3
ectosync.held_shared_memory = 256kB
ectosync.load_window = 1s
ectosync.batch_delay = 100ms" ECTOSYNC_EXPECT_PRESSURE=1 \
  run "client tests under tiny shared memory" scripts/with-cluster.sh \
  ctest --test-dir client/build -R 'client_(oracle|listener|fault)' --output-on-failure
ECTOSYNC_CONF="shared_preload_libraries = ''" \
  run "without shared_preload_libraries" scripts/with-cluster.sh bash -c "$(declare -f no_preload_check); no_preload_check"

# A shared held value that outgrows ectosync.held_shared_memory goes on as
# the session's own (scripts/checks/held_shared_full.sql raises otherwise).
ECTOSYNC_CONF="ectosync.held_shared_memory = 2MB" \
  run "shared held values out of memory" scripts/with-cluster.sh \
  psql -X -v ON_ERROR_STOP=1 -f scripts/checks/held_shared_full.sql

# A shared held value that no event concerned while more went by than the
# event log keeps gets a patch of its next change, not a reload
# (scripts/checks/quiet_shared_value.sql raises otherwise).
ECTOSYNC_CONF="ectosync.event_log_size = 64" \
  run "a quiet shared value reads no events it did not need" scripts/with-cluster.sh \
  psql -X -q -v ON_ERROR_STOP=1 -f scripts/checks/quiet_shared_value.sql

# Rows of tables that no session used lately are not read ahead, and what
# the cache held of them is not served once they change
# (scripts/checks/load_window.sql raises otherwise).
ECTOSYNC_CONF="ectosync.load_window = 2s" \
  run "rows read on demand after ectosync.load_window" scripts/with-cluster.sh \
  psql -X -q -v ON_ERROR_STOP=1 -f scripts/checks/load_window.sql

# The row cache's hash keeps its fixed size: small rows fill it before the
# arena, and it evicts (scripts/checks/row_cache_fixed.sql raises otherwise).
ECTOSYNC_CONF="ectosync.cache_size = 1MB" \
  run "the row cache's hash within its fixed size" scripts/with-cluster.sh \
  psql -X -q -v ON_ERROR_STOP=1 -f scripts/checks/row_cache_fixed.sql

# A dump of a database with watches, restored plain and schema-then-data
# with --disable-triggers: capture is right with no manual step
# (scripts/checks/restore.sh exits non-zero otherwise).
run "capture after pg_dump and restore" scripts/with-cluster.sh scripts/checks/restore.sh

node_example() {
  cd examples/node || return
  if [[ -f package-lock.json ]]; then npm ci --no-audit --no-fund || return
  else npm install --no-audit --no-fund || return; fi
  npm test
}
# The Node.js example (examples/node): hold()/changes() and the stateless loop with the pg package.
run "Node.js example (npm test)" scripts/with-cluster.sh bash -c "$(declare -f node_example); node_example"

if [[ $status == 0 ]]; then echo "== all tests passed"; else echo "== some tests FAILED"; fi
echo "suites: $passed passed, $failed failed"
exit $status
