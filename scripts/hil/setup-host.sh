#!/usr/bin/env bash
# Installs the host tools the HIL VM and the cross-arch tests need, only
# when something is missing (a fresh CI machine has Go, gcc and git).
# The guest's arm64/armhf packages are fetched by prepare.sh with a private
# apt index (.cache/hil/apt): the host's dpkg architectures stay untouched.
set -euo pipefail
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have qemu-arm-static || need+=(qemu-user-static)
[ "${1:-}" = user ] || {
  have qemu-system-aarch64 || need+=(qemu-system-arm)
  have cpio || need+=(cpio)
  have depmod || [ -x /usr/sbin/depmod ] || need+=(kmod)
  have make || need+=(make)
  have patch || need+=(patch)
  have xz || need+=(xz-utils)
  have gcc-12 || need+=(gcc-12)
  have aarch64-linux-gnu-gcc-12 || need+=(gcc-12-aarch64-linux-gnu)
  have arm-linux-gnueabihf-gcc-12 || need+=(gcc-12-arm-linux-gnueabihf)
  [ -e /usr/arm-linux-gnueabihf/lib/libc.so.6 ] || need+=(libc6-armhf-cross)
}
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
