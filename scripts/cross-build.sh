#!/usr/bin/env bash
# Cross-builds the agent and packages it.
#
#   scripts/cross-build.sh          all targets into dist/
#
# Binaries (CGO_ENABLED=0, static, -trimpath, stripped, version-stamped,
# -tags nethttpomithttp2):
#   dist/pinshadow-agent_linux_armv6   GOARM=6: every 32-bit Pi (Zero/1 are ARMv6)
#   dist/pinshadow-agent_linux_armv7   GOARM=7: Pi 2/3/4 32-bit only (dies with SIGILL on a Zero/1)
#   dist/pinshadow-agent_linux_arm64   Pi 3/4/5, Zero 2 W with a 64-bit OS
#   dist/pinshadow-agent_linux_amd64
# plus dist/SHA256SUMS and one .deb per Debian architecture:
#   armhf ← the GOARM=6 build (Debian's armhf is ARMv7, Raspberry Pi OS's
#           armhf is ARMv6: the ARMv6 binary runs on both), arm64, amd64.
# The .deb installs /usr/bin/pinshadow-agent, the systemd unit and udev rule
# from packaging/, an example /etc/pinshadow/agent.yaml (conffile) and
# creates the system user pinshadow in groups gpio and i2c.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
DIST=${DIST:-dist}
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
ldflags="-s -w -X main.version=$version -X main.commit=$commit"
rm -rf "$DIST"; mkdir -p "$DIST"

# name GOARCH GOARM debian-arch ("" = no .deb)
targets=(
  "armv6 arm 6 armhf"
  "armv7 arm 7 -"
  "arm64 arm64 - arm64"
  "amd64 amd64 - amd64"
)
for t in "${targets[@]}"; do
  read -r name goarch goarm _ <<<"$t"
  out=$DIST/pinshadow-agent_linux_$name
  envs=(CGO_ENABLED=0 GOOS=linux GOARCH="$goarch")
  [ "$goarm" != - ] && envs+=(GOARM="$goarm")
  # nethttpomithttp2: nothing here speaks HTTP/2 (MQTT over WebSocket is an
  # HTTP/1.1 upgrade; status, metrics and console are local HTTP/1.1), and
  # leaving net/http's bundled HTTP/2 out saves ~0.5 MB.
  env "${envs[@]}" go build -tags nethttpomithttp2 -trimpath -ldflags "$ldflags" -o "$out" ./cmd/agent
done

# ---- .deb -------------------------------------------------------------------
# Debian versions: a tag v1.2.3[-4-gHASH][-dirty] becomes 1.2.3[+4.gHASH][+dirty];
# an untagged tree (describe gives a bare hash) becomes 0~gitDATE.HASH.
if [[ $version =~ ^v?([0-9]+(\.[0-9]+)*)(-([0-9]+)-g([0-9a-f]+))?(-dirty)?$ ]]; then
  debver=${BASH_REMATCH[1]}
  [ -n "${BASH_REMATCH[4]}" ] && debver+="+${BASH_REMATCH[4]}.g${BASH_REMATCH[5]}"
else
  debver="0~git$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || date -u +%Y%m%d).${version%-dirty}"
fi
[[ $version == *-dirty ]] && debver+="+dirty"
for f in packaging/pinshadow.service packaging/99-pinshadow.rules; do
  [ -f "$f" ] || { echo "cross-build: $f missing (packaging/ is written by another part of the project)" >&2; exit 1; }
done
for t in "${targets[@]}"; do
  read -r name _ _ debarch <<<"$t"
  [ "$debarch" = - ] && continue
  R=$(mktemp -d); chmod 0755 "$R"
  install -D -m 0755 "$DIST/pinshadow-agent_linux_$name" "$R/usr/bin/pinshadow-agent"
  # The unit's install notes use /usr/local/bin; a package owns /usr/bin.
  install -d "$R/lib/systemd/system" "$R/lib/udev/rules.d" "$R/etc/pinshadow" "$R/DEBIAN" "$R/usr/share/doc/pinshadow"
  sed 's#/usr/local/bin/pinshadow-agent#/usr/bin/pinshadow-agent#g' packaging/pinshadow.service > "$R/lib/systemd/system/pinshadow.service"
  install -m 0644 packaging/99-pinshadow.rules "$R/lib/udev/rules.d/99-pinshadow.rules"
  install -m 0640 scripts/deb/agent.yaml "$R/etc/pinshadow/agent.yaml"
  [ -f README.md ] && install -m 0644 README.md "$R/usr/share/doc/pinshadow/README.md"
  # Opt-in pieces for the apply-config and reboot jobs (README: jobs).
  install -D -m 0644 -t "$R/usr/share/doc/pinshadow/examples" packaging/examples/jobs.conf packaging/examples/50-pinshadow-reboot.rules
  size=$(du -sk "$R" | cut -f1)
  cat > "$R/DEBIAN/control" <<CTL
Package: pinshadow
Version: $debver
Architecture: $debarch
Maintainer: pinshadow developers <pinshadow@users.noreply.github.com>
Installed-Size: $size
Depends: passwd
Recommends: systemd
Section: net
Priority: optional
Homepage: https://github.com/pinshadow/pinshadow
Description: device agent syncing AWS IoT device shadows with Raspberry Pi hardware
 pinshadow-agent keeps AWS IoT (or a local MQTT) device shadows and a
 Raspberry Pi's GPIO, PWM and I2C devices in step: desired values drive
 relays and outputs, sensors and inputs are reported.
 .
 Runs as the system user pinshadow (groups gpio, i2c) under systemd.
CTL
  echo /etc/pinshadow/agent.yaml > "$R/DEBIAN/conffiles"
  for s in preinst postinst prerm postrm; do install -m 0755 "scripts/deb/$s" "$R/DEBIAN/$s"; done
  deb=$DIST/pinshadow_${debver}_${debarch}.deb
  dpkg-deb --root-owner-group -Zxz --build "$R" "$deb" >/dev/null
  rm -rf "$R"
done

(cd "$DIST" && sha256sum pinshadow-agent_* ./*.deb | sed 's# \./# #' > SHA256SUMS)
echo "== dist/ ($version)"
printf '%-40s %10s %8s\n' FILE BYTES MB
for f in "$DIST"/pinshadow-agent_* "$DIST"/*.deb; do
  b=$(stat -c %s "$f")
  printf '%-40s %10d %8.2f\n' "$(basename "$f")" "$b" "$(awk -v b="$b" 'BEGIN{print b/1048576}')"
done

# ---- check what was built ----------------------------------------------------
# Each .deb: control fields, conffile, maintainer scripts that parse, the
# files at their paths with their modes, and a binary of the right machine
# (ELF e_machine: 0x28 ARM, 0xb7 AArch64, 0x3e x86-64) that the unit runs.
fail() { echo "cross-build: CHECK FAILED: $*" >&2; exit 1; }
for deb in "$DIST"/*.deb; do
  arch=$(dpkg-deb -f "$deb" Architecture)
  [ "$(dpkg-deb -f "$deb" Package)" = pinshadow ] || fail "$deb: package name"
  X=$(mktemp -d)
  dpkg-deb -x "$deb" "$X"; dpkg-deb -e "$deb" "$X/DEBIAN"
  grep -qx /etc/pinshadow/agent.yaml "$X/DEBIAN/conffiles" || fail "$deb: agent.yaml is not a conffile"
  for s in preinst postinst prerm postrm; do sh -n "$X/DEBIAN/$s" || fail "$deb: $s does not parse"; done
  contents=$(dpkg-deb --contents "$deb")
  for want in "-rwxr-xr-x root/root .* ./usr/bin/pinshadow-agent" \
      "-rw-r--r-- root/root .* ./lib/systemd/system/pinshadow.service" \
      "-rw-r--r-- root/root .* ./lib/udev/rules.d/99-pinshadow.rules" \
      "-rw-r----- root/root .* ./etc/pinshadow/agent.yaml" \
      "-rw-r--r-- root/root .* ./usr/share/doc/pinshadow/examples/jobs.conf" \
      "-rw-r--r-- root/root .* ./usr/share/doc/pinshadow/examples/50-pinshadow-reboot.rules"; do
    grep -q -- "$want" <<<"$contents" || fail "$deb: no '$want' in dpkg-deb --contents"
  done
  grep -q '^ExecStart=/usr/bin/pinshadow-agent run --config /etc/pinshadow/agent.yaml' "$X/lib/systemd/system/pinshadow.service" ||
    fail "$deb: the unit does not run /usr/bin/pinshadow-agent with /etc/pinshadow/agent.yaml"
  machine=$(od -An -tx2 -j18 -N2 "$X/usr/bin/pinshadow-agent" | tr -d ' ')
  case $arch:$machine in armhf:0028|arm64:00b7|amd64:003e) ;; *) fail "$deb: binary machine $machine for $arch" ;; esac
  rm -rf "$X"
done
# The example config is valid, and the armhf package's binary runs on an
# ARMv6 core (Pi Zero/1) — needs qemu-user (scripts/qemu-test.sh installs it).
go run ./cmd/agent validate --config scripts/deb/agent.yaml >/dev/null || fail "scripts/deb/agent.yaml does not validate"
if command -v qemu-arm-static >/dev/null 2>&1; then
  qemu-arm-static -cpu arm1176 "$DIST/pinshadow-agent_linux_armv6" version | grep -q "$version" || fail "armv6 binary does not run on arm1176"
fi
scripts/deb/test-maintainer-scripts.sh || fail "maintainer scripts"
(cd "$DIST" && sha256sum --quiet -c SHA256SUMS) || fail "SHA256SUMS"
echo "== packages checked (dpkg-deb --info/--contents, conffile, maintainer scripts against stubs, ELF machine, arm1176 run)"
