#!/usr/bin/env bash
# Installs the programs the end-to-end tests run: promtool and prometheus (Debian's
# `prometheus` package), alertmanager (`prometheus-alertmanager`), redis-server (the
# shared duplicate store) and wrk (the soak's load generator). Needs root and apt;
# elsewhere it says what is missing and the tests that need it skip (or fail under CI=true).
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 \
  || missing+=(prometheus-alertmanager)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (Debian packages) for the end-to-end tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "note: ${missing[*]} not installed and not root: tests that need them will skip" >&2
fi
