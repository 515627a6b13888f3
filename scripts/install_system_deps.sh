#!/usr/bin/env bash
# Install the Debian packages the server tests and browser tests need, only when missing.
#
#   scripts/install_system_deps.sh [--browser|--no-browser]
#
# Packages: postgresql (always); chromium chromium-driver (unless --no-browser or
# TR_INSTALL_BROWSER=0). Idempotent: does nothing (no apt-get update) when all are present.
# Runs apt-get directly as root, through sudo otherwise (when sudo exists).
set -euo pipefail

browser=${TR_INSTALL_BROWSER:-1}
for arg in "$@"; do
  case "$arg" in
    --browser) browser=1 ;;
    --no-browser) browser=0 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "install_system_deps.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

pkgs=(postgresql)
if [ "$browser" != 0 ]; then
  pkgs+=(chromium chromium-driver)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install_system_deps: already installed: ${pkgs[*]}"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo -n)
else
  echo "install_system_deps: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install_system_deps: installing ${missing[*]}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 \
  || ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
       --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}" >>"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "install_system_deps: apt-get failed" >&2
  exit 1
fi
echo "install_system_deps: done"
