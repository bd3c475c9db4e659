#!/usr/bin/env bash
# Debian packages the local deployment needs, installed only when missing (make deploy-up, .ci/run):
#   postgresql      the metadata database server (deploy/local.py runs a private cluster under var/)
#   docker-compose  only to validate docker-compose.yml (`docker-compose config` needs no Docker engine)
set -euo pipefail
missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
if [ "${1:-}" = "--with-compose" ] && ! command -v docker-compose >/dev/null; then missing+=(docker-compose); fi
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
echo "[crmtier] installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
