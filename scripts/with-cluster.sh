#!/usr/bin/env bash
# with-cluster.sh CMD [ARGS...]: run CMD against a throwaway PostgreSQL 15
# cluster with ecto_sync preloaded, then stop and remove the cluster, also
# when CMD fails or the run is interrupted.
#
# The cluster lives in a fresh temporary directory with a private copy of the
# PostgreSQL installation (the extension is installed there with DESTDIR), so
# that two runs at once, or a run beside a system server, never clash.  It
# listens on 127.0.0.1 on a free port.  PostgreSQL refuses to run as root:
# as root, the server runs as the unprivileged user "postgres" (created if
# missing); CMD itself runs as the caller.
#
# CMD sees: PGHOST PGPORT PGUSER PGDATABASE (a superuser, trust auth on
# loopback), ECTOSYNC_PGDATA, ECTOSYNC_PGBIN, and ECTOSYNC_PGCTL: a command
# prefix that runs pg_ctl on this cluster ("$ECTOSYNC_PGCTL restart -m fast").
#
# ECTOSYNC_EXISTING=1 skips all of this and runs CMD against the server that
# PGHOST/PGPORT/PGUSER already name (with ecto_sync installed and preloaded).
# ECTOSYNC_CONF may hold extra postgresql.conf lines.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)

if [[ "${ECTOSYNC_EXISTING:-0}" == 1 ]]; then
  exec "$@"
fi

pg_bindir=$(pg_config --bindir)
pg_sharedir=$(pg_config --sharedir)
pg_libdir=$(pg_config --pkglibdir)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ectosync-cluster.XXXXXX")
chmod 755 "$tmp"
run="$tmp/run" # owned by the server's user: data, socket and log
data="$run/data"
run_as=()
if [[ $(id -u) == 0 ]]; then
  id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  run_as=(runuser -u postgres --)
fi

pgctl() { "${run_as[@]}" "$inst_bin/pg_ctl" -D "$data" "$@"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -f "$data/postmaster.pid" ]]; then
    pgctl stop -m immediate -w >/dev/null 2>&1 || true
  fi
  if [[ "${ECTOSYNC_KEEP_CLUSTER:-0}" == 1 ]]; then
    echo "with-cluster: kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A private copy of the installation: the server finds its share and lib
# directories relative to its own binary.
inst="$tmp/inst"
mkdir -p "$inst$(dirname "$pg_bindir")" "$inst$(dirname "$pg_sharedir")"
cp -a "$(dirname "$pg_bindir")/." "$inst$(dirname "$pg_bindir")/"
cp -a "$pg_sharedir" "$inst$(dirname "$pg_sharedir")/"
[[ -d "$inst$pg_libdir" ]] || cp -a "$pg_libdir" "$inst$(dirname "$pg_libdir")/"
make -C "$here" -s install DESTDIR="$inst" >/dev/null
inst_bin="$inst$pg_bindir"

mkdir -p "$run"
if [[ ${#run_as[@]} -gt 0 ]]; then chown postgres "$run"; fi
"${run_as[@]}" "$inst_bin/initdb" -D "$data" -U postgres -A trust -E UTF8 \
  --locale=C.UTF-8 >"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; exit 1; }

cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$run'
shared_preload_libraries = 'ecto_sync'
max_connections = 300
# ecto_sync runs one worker per database that has the extension, plus the
# launcher; tests create and drop databases of their own.
max_worker_processes = 32
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
log_line_prefix = '%m [%p] %b '
${ECTOSYNC_CONF:-}
EOF

# Pick a free port; if another run takes it first, try the next one.
started=0
for attempt in $(seq 1 20); do
  port=$((20000 + (RANDOM % 20000)))
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
  if pgctl start -w -t 60 -l "$run/server.log" -o "-p $port" >/dev/null 2>&1; then
    started=1
    break
  fi
done
if [[ $started != 1 ]]; then
  echo "with-cluster: the server did not start; its log:" >&2
  cat "$run/server.log" >&2 || true
  exit 1
fi

export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=postgres
export ECTOSYNC_PGDATA=$data ECTOSYNC_PGBIN=$inst_bin ECTOSYNC_LOG=$run/server.log
export ECTOSYNC_PGCTL="${run_as[*]} $inst_bin/pg_ctl -D $data -o -p$port -l $run/server.log"

set +e
"$@"
rc=$?
set -e
if [[ $rc != 0 && "${ECTOSYNC_SHOW_LOG:-1}" == 1 ]]; then
  echo "with-cluster: command failed ($rc); last lines of the server log:" >&2
  tail -n 40 "$run/server.log" >&2 || true
fi
exit $rc
