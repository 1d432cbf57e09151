#!/usr/bin/env bash
# prepare.sh ARCH (arm64|armhf): fetches the pinned Debian kernel, headers,
# kbuild tools, kernel source and busybox-static (sha256-checked), unpacks
# them and builds gpio-sim.ko and i2c-stub-rdwr.ko out of tree.
# Everything lands in .cache/hil/ and is reused: downloads by file name,
# the unpacked tree by kernel version, modules by a hash of the patches and
# this script. Prints nothing but the path of the ready directory on stdout.
set -euo pipefail
ARCH=${1:?usage: prepare.sh arm64|armhf}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=versions.env
. "$HERE/versions.env"
# HIL_KPKG/HIL_KABI/HIL_BUSYBOX override the pins (used to test the fallback).
KPKG=${HIL_KPKG:-$KPKG}; KABI=${HIL_KABI:-$KABI}; BUSYBOX=${HIL_BUSYBOX:-$BUSYBOX}
CACHE=${HIL_CACHE:-$ROOT/.cache/hil}
DEBS=$CACHE/debs
log() { echo "hil[$ARCH]: $*" >&2; }

case $ARCH in
  arm64) FLAVOUR=arm64; KARCH=arm64; CROSS=aarch64-linux-gnu- ;;
  armhf) FLAVOUR=armmp; KARCH=arm; CROSS=arm-linux-gnueabihf- ;;
  *) echo "unknown ARCH $ARCH" >&2; exit 2 ;;
esac

# A private apt index with the arm64/armhf architectures, so the host's
# dpkg architectures (and its own apt-get update) stay as they are.
apt_index() {
  [ -n "${APT_CONFIG:-}" ] && return 0
  A=$CACHE/apt; mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
  printf 'APT::Architectures { "amd64"; "arm64"; "armhf"; };\nDir::State::Lists "%s/lists";\nDir::Cache "%s/cache";\n' "$A" "$A" > "$A/apt.conf"
  export APT_CONFIG=$A/apt.conf
  # bookworm-security's armhf index is sometimes mid-sync: the pinned
  # packages are in bookworm main, so an index error is not fatal.
  apt-get update -qq >&2 2>/dev/null || log "apt-get update reported errors (continuing: the packages are checked by sha256)"
}

# Debian's mirror keeps only the current point release: when the pinned
# kernel is gone, fall back to the kernel bookworm main serves now (apt
# checks it against Debian's signed index; our sha256 pins cannot), say so
# loudly and print the pins to commit. HIL_STRICT_PINS=1 refuses instead.
PINNED=1
if [ -z "$(ls "$DEBS"/linux-image-"$KABI"-"$FLAVOUR"_"$KPKG"_*.deb 2>/dev/null)" ]; then
  apt_index
  if ! apt-cache show "linux-image-$KABI-$FLAVOUR:$ARCH=$KPKG" >/dev/null 2>&1; then
    [ "${HIL_STRICT_PINS:-0}" = 1 ] && { echo "hil: pinned kernel $KPKG (ABI $KABI) is gone from the mirror; update scripts/hil/versions.env and SHA256SUMS (HIL_STRICT_PINS=1)" >&2; exit 1; }
    main_version() { # PKG:ARCH -> the version bookworm main (not -security) serves
      apt-cache madison "$1" | awk -F'|' '$3 ~ /bookworm\/main/ {gsub(/ /, "", $2); print $2; exit}'
    }
    meta=$(main_version "linux-image-$FLAVOUR:$ARCH")
    dep=$(apt-cache show "linux-image-$FLAVOUR:$ARCH=$meta" | sed -n 's/^Depends: *//p' | head -1 |
      tr ',' '\n' | sed -n "s/^ *linux-image-\(6\.1\.0-[0-9]*\)-$FLAVOUR *(= *\([^)]*\)).*/\1 \2/p" | head -1)
    newbb=$(main_version "busybox-static:$ARCH")
    [ -n "$dep" ] && [ -n "$newbb" ] || { echo "hil: pinned kernel $KPKG is gone and no current bookworm 6.1 kernel was found; update scripts/hil/versions.env" >&2; exit 1; }
    log "WARNING: pinned kernel $KPKG (ABI $KABI) is gone from the mirror; using bookworm's current ${dep#* } (ABI ${dep% *}), busybox $newbb."
    log "WARNING: update scripts/hil/versions.env to KPKG=${dep#* } KABI=${dep% *} BUSYBOX=$newbb and SHA256SUMS with the lines printed below."
    KABI=${dep% *}; KPKG=${dep#* }; BUSYBOX=$newbb; PINNED=0
  fi
fi
KVER=$KABI-$FLAVOUR

# ---- download (pinned versions, checked by sha256) ----------------------
pkgs=(
  "linux-image-$KVER:$ARCH=$KPKG"
  "linux-headers-$KVER:$ARCH=$KPKG"
  "linux-headers-$KABI-common=$KPKG"
  "linux-kbuild-6.1:amd64=$KPKG"
  "linux-source-6.1=$KPKG"
  "busybox-static:$ARCH=$BUSYBOX"
)
[ "$ARCH" = armhf ] && pkgs+=("linux-kbuild-6.1:armhf=$KPKG")
debfile() { # PKG[:ARCH]=VER -> the file name apt-get download writes
  local spec=$1 name ver arch
  name=${spec%%=*}; ver=${spec#*=}; arch=all
  if [[ $name == *:* ]]; then arch=${name#*:}; name=${name%%:*}; fi
  [[ $name == linux-headers-*-common || $name == linux-source-* ]] && arch=all
  echo "${name}_${ver//:/%3a}_${arch}.deb"
}
mkdir -p "$DEBS"
missing=()
for p in "${pkgs[@]}"; do [ -f "$DEBS/$(debfile "$p")" ] || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "downloading ${missing[*]}"
  t0=$(date +%s)
  apt_index
  # apt's sandbox user cannot write into the cache; download in a temp dir.
  tmp=$(mktemp -d); chmod 777 "$tmp"
  (cd "$tmp" && apt-get download -q "${missing[@]}" >&2)
  mv "$tmp"/*.deb "$DEBS"/; rmdir "$tmp"
  log "downloaded in $(( $(date +%s) - t0 )) s"
fi
for p in "${pkgs[@]}"; do
  f=$(debfile "$p")
  got=$(sha256sum "$DEBS/$f" | cut -d' ' -f1)
  if [ "$PINNED" = 0 ]; then log "new pin: $got  $f"; continue; fi
  want=$(awk -v f="$f" '$2 == f {print $1}' "$HERE/SHA256SUMS")
  [ -n "$want" ] || { echo "hil: $f has no pinned sha256 in scripts/hil/SHA256SUMS" >&2; exit 1; }
  if [ "$got" != "$want" ]; then
    echo "hil: $f: sha256 $got, pinned $want; delete it and re-run, or update the pins" >&2
    exit 1
  fi
done

# ---- unpack ----------------------------------------------------------------
WORK=$CACHE/$KPKG/$ARCH
R=$WORK/root
if [ ! -f "$R/.done" ]; then
  log "unpacking"
  rm -rf "$R"; mkdir -p "$R"
  for p in "${pkgs[@]}"; do
    case $p in linux-source-*|linux-kbuild-6.1:armhf*) continue ;; esac
    dpkg-deb -x "$DEBS/$(debfile "$p")" "$R"
  done
  sed -i "s#^include /usr/src/#include $R/usr/src/#" "$R/usr/src/linux-headers-$KVER/Makefile"
  if [ "$ARCH" = armhf ]; then
    # The amd64 modpost has the host's (LP64) device-table sizes built in,
    # fatal for 32-bit ARM modules: run the armhf one under qemu-user.
    # Debian's modpost is a dispatcher that execv()s modpost.real-*; call
    # the real one directly (qemu-user cannot follow the execv without
    # binfmt_misc).
    A=$WORK/kbuild-armhf; rm -rf "$A"; mkdir -p "$A"
    dpkg-deb -x "$DEBS/$(debfile "linux-kbuild-6.1:armhf=$KPKG")" "$A"
    mp=$R/usr/lib/linux-kbuild-6.1/scripts/mod/modpost
    rm -f "$mp"
    printf '#!/bin/sh\nexec qemu-arm-static -L /usr/arm-linux-gnueabihf %s "$@"\n' \
      "$A/usr/lib/linux-kbuild-6.1/scripts/mod/modpost.real-lsb-32" > "$mp"
    chmod +x "$mp"
  fi
  touch "$R/.done"
fi

SRC=$CACHE/$KPKG/src
if [ ! -f "$SRC/.done" ]; then
  log "extracting gpio-sim, irq_sim and i2c-stub from linux-source"
  rm -rf "$SRC"; mkdir -p "$SRC"
  dpkg-deb --fsys-tarfile "$DEBS/$(debfile "linux-source-6.1=$KPKG")" |
    tar -xO ./usr/src/linux-source-6.1.tar.xz | xz -dc -T0 |
    tar -x -C "$SRC" --strip-components=1 \
      linux-source-6.1/drivers/gpio/gpio-sim.c linux-source-6.1/drivers/gpio/gpiolib.h \
      linux-source-6.1/kernel/irq/irq_sim.c linux-source-6.1/drivers/i2c/i2c-stub.c
  touch "$SRC/.done"
fi

# ---- build the modules -------------------------------------------------------
key=$(cat "$HERE"/patches/*.patch "$HERE/prepare.sh" | sha256sum | cut -c1-12)
MOD=$WORK/modules-$key
if [ ! -f "$MOD/.done" ]; then
  log "building gpio-sim.ko and i2c-stub-rdwr.ko"
  t0=$(date +%s)
  rm -rf "$MOD"; B=$WORK/build; rm -rf "$B"; mkdir -p "$B/drivers/gpio" "$B/drivers/i2c" "$B/kernel/irq"
  cp "$SRC/drivers/gpio/gpio-sim.c" "$SRC/drivers/gpio/gpiolib.h" "$B/drivers/gpio/"
  cp "$SRC/drivers/i2c/i2c-stub.c" "$B/drivers/i2c/"
  cp "$SRC/kernel/irq/irq_sim.c" "$B/kernel/irq/"
  (cd "$B" && patch -s -p1 < "$HERE/patches/irq_sim-oot.patch" && patch -s -p1 < "$HERE/patches/i2c-stub-rdwr.patch")
  mv "$B/drivers/gpio/gpio-sim.c" "$B/gpio-sim-core.c"; mv "$B/drivers/gpio/gpiolib.h" "$B/"
  mv "$B/kernel/irq/irq_sim.c" "$B/"; mv "$B/drivers/i2c/i2c-stub.c" "$B/i2c-stub-rdwr.c"
  cat > "$B/Kbuild" <<'KB'
obj-m := gpio-sim.o i2c-stub-rdwr.o
gpio-sim-y := gpio-sim-core.o irq_sim.o
KB
  make -s -C "$R/usr/src/linux-headers-$KVER" M="$B" ARCH="$KARCH" \
    CROSS_COMPILE="$CROSS" CC="${CROSS}gcc-12" HOSTCC=gcc-12 modules >&2
  mkdir -p "$MOD"; cp "$B"/gpio-sim.ko "$B"/i2c-stub-rdwr.ko "$MOD"/
  touch "$MOD/.done"
  log "modules built in $(( $(date +%s) - t0 )) s"
fi
echo "KVER=$KVER"
echo "ROOT=$R"
echo "MODULES=$MOD"
