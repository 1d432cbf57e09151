#!/usr/bin/env bash
# Installs the host tools the HIL VM and the cross-arch tests need, only
# when something is missing (a fresh CI machine has Go, gcc and git).
# Adds the arm64/armhf dpkg architectures so `apt-get download` can fetch
# the guest's packages; nothing for those architectures is installed.
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
archs=$(dpkg --print-foreign-architectures)
added=0
for a in arm64 armhf; do
  if ! grep -qx "$a" <<<"$archs"; then $SUDO dpkg --add-architecture "$a"; added=1; fi
done
if [ ${#need[@]} -gt 0 ] || [ $added = 1 ]; then
  echo "== installing ${need[*]:-(apt index for arm64/armhf)}"
  # The security mirror's armhf index is sometimes mid-sync; the pinned
  # packages come from bookworm main, so an index error is not fatal here.
  $SUDO apt-get update -qq || echo "apt-get update reported errors (continuing: the pinned packages are checked by sha256)"
  if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi
