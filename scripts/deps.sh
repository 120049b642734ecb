#!/usr/bin/env bash
# deps.sh: install the Debian packages that building and testing ecto_sync
# need, when they are missing.  Idempotent; needs root (or sudo) only when
# something is missing.
set -euo pipefail

packages=(postgresql-15 postgresql-client-15 postgresql-server-dev-15 libpq-dev
          make g++ cmake libgtest-dev libbenchmark-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The Node.js example's test (examples/node) needs node and npm; any that are
# on the PATH will do (NodeSource's nodejs package bundles npm and conflicts
# with Debian's), else Debian's.
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=()
[[ $(id -u) == 0 ]] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
# Debian's postgresql-common creates and starts a "main" cluster on install;
# the tests use their own throwaway clusters and need none of it.
"${sudo[@]}" mkdir -p /etc/postgresql-common
if [[ ! -f /etc/postgresql-common/createcluster.conf ]] ||
   ! grep -q '^create_main_cluster *= *false' /etc/postgresql-common/createcluster.conf; then
  echo "create_main_cluster = false" | "${sudo[@]}" tee -a /etc/postgresql-common/createcluster.conf >/dev/null
fi
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
