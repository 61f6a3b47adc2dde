#!/usr/bin/env bash
# Installs the programs the end-to-end tests run: promtool and prometheus (Debian's
# `prometheus` package), alertmanager (`prometheus-alertmanager`), redis-server (the
# shared duplicate store), wrk (the soak's load generator), and for the container test
# podman with runc (a container engine without a daemon) and debootstrap (the image's base,
# since no image registry may be reachable). Needs root and apt; elsewhere it says what is
# missing and the tests that need it skip (or fail under CI=true).
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 \
  || missing+=(prometheus-alertmanager)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v podman >/dev/null 2>&1 || missing+=(podman)
# podman's other runtime, crun, cannot start containers on machines like CI's.
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v newuidmap >/dev/null 2>&1 || missing+=(uidmap)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (Debian packages) for the end-to-end tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "note: ${missing[*]} not installed and not root: tests that need them will skip" >&2
fi
