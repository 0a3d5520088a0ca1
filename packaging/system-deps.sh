#!/usr/bin/env bash
# Installs the system packages hoopd's demo, tests and benchmarks use, if missing.
# Usage: packaging/system-deps.sh [--bench | --test]
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }

ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
have psql || need+=(postgresql-client)
have pg_dump || need+=(postgresql-client)
have setpriv || need+=(util-linux)
if [[ "${1:-}" == "--test" ]]; then
  have curl || need+=(curl)
  have npm || need+=(nodejs npm)  # the tests' OpenID Connect provider runs on node
  [[ -x /usr/sbin/sshd ]] || need+=(openssh-server)  # the SSH tests' target
  have ssh || need+=(openssh-client)  # ssh, scp, sftp, ssh-keygen
  have rsync || need+=(rsync)
  have git || need+=(git)
  have tmux || need+=(tmux)  # interactive SSH sessions in the tests
  have xauth || need+=(xauth)  # the SSH tests' target runs it for X11 forwarding
fi
if [[ "${1:-}" == "--bench" ]]; then
  have pgbouncer || need+=(pgbouncer)
  [[ -x /usr/sbin/sshd ]] || need+=(openssh-server)  # the SSH benchmark's target
  have ssh || need+=(openssh-client)
fi

if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing system packages: ${need[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "installing system packages: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
