#!/usr/bin/env bash
# callgrind-write.sh [TRANSACTIONS]: instructions per transaction of the
# write benchmark's transaction (scripts/bench.sh write) in each of its
# configurations: no triggers, ecto_sync capture, plpgsql pg_notify.
#
# Timings on a shared 2-core machine vary by 10% and more between runs;
# instruction counts repeat to a fraction of a percent, so this is how to
# tell whether a change to the writer's path helps.  Each configuration's
# database is prepared as the benchmark prepares it; then the server is
# stopped and a single-user backend (postgres --single, ecto_sync preloaded,
# no worker) runs the script as plain SQL under valgrind's callgrind, twice
# on copies of the same data: 50 warm-up transactions, then the warm-up plus
# TRANSACTIONS (default 400).  The difference, divided by TRANSACTIONS, is
# the cost of a warm transaction.  The profiles stay in
# ${ECTOSYNC_CALLGRIND_DIR:-/tmp/ectosync-callgrind} for callgrind_annotate.
# Needs valgrind; runs it at the lowest priority.  Takes about two minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "callgrind-write: valgrind is not installed" >&2; exit 1; }
n=${1:-400}
scripts/build.sh ectosync_bench
export ECTOSYNC_CALLGRIND_N=$n
export ECTOSYNC_CALLGRIND_DIR=${ECTOSYNC_CALLGRIND_DIR:-/tmp/ectosync-callgrind}
exec scripts/with-cluster.sh bash -c '
set -euo pipefail
out=$ECTOSYNC_CALLGRIND_DIR n=$ECTOSYNC_CALLGRIND_N
bench=client/build/bench/ectosync_bench
rm -rf "$out"; mkdir -p "$out"; chmod 777 "$out"
configs=(none capture notify)
declare -A name=([none]="no triggers" [capture]="ecto_sync capture" [notify]="plpgsql pg_notify")
for c in "${configs[@]}"; do "$bench" write-setup --db "$c" --config "${name[$c]}"; done
"$bench" write-sql --transactions 50 --seed 7 >"$out/warm.sql"
"$bench" write-sql --transactions "$n" --seed 1 >"$out/work.sql"
cat "$out/warm.sql" "$out/work.sql" >"$out/full.sql"
$ECTOSYNC_PGCTL stop -m fast >/dev/null
owner=$(stat -c %U "$ECTOSYNC_PGDATA")
as_owner=(); [[ $(id -u) == 0 ]] && as_owner=(runuser -u "$owner" --)
declare -A per_txn
for c in "${configs[@]}"; do
  declare -A total
  for part in warm full; do
    rm -rf "$out/data"; cp -a "$ECTOSYNC_PGDATA" "$out/data"
    "${as_owner[@]}" nice -n 19 valgrind --tool=callgrind --callgrind-out-file="$out/$c.$part.cg" \
      "$ECTOSYNC_PGBIN/postgres" --single -D "$out/data" -c shared_preload_libraries=ecto_sync \
      "$c" <"$out/$part.sql" >"$out/$c.$part.log" 2>&1
    if grep -q "ERROR" "$out/$c.$part.log"; then
      echo "callgrind-write: $c ($part) had errors:" >&2; grep -m5 ERROR "$out/$c.$part.log" >&2; exit 1
    fi
    total[$part]=$(sed -n "s/^summary: //p" "$out/$c.$part.cg")
  done
  per_txn[$c]=$(( (total[full] - total[warm]) / n ))
  unset total
done
rm -rf "$out/data"
echo
echo "instructions per write transaction (callgrind, single-user backend, $n transactions)"
for c in "${configs[@]}"; do
  printf "  %-20s %10d  %s\n" "${name[$c]}" "${per_txn[$c]}" \
    "$(awk -v a="${per_txn[$c]}" -v b="${per_txn[none]}" "BEGIN { printf \"%+.1f%%\", (a / b - 1) * 100 }")"
done
echo "profiles: $out (callgrind_annotate --inclusive=yes $out/capture.full.cg)"
'
