#!/usr/bin/env bash
# Hardware-in-the-loop in a VM: boots the pinned Debian kernel under
# qemu-system (arm64 -M virt; armhf -M virt -cpu cortex-a15), with gpio-sim
# and a patched i2c-stub built out of tree (scripts/hil/prepare.sh), and runs
# the hil-tagged tests and the agent scenario against them. See
# scripts/hil/init for the guest side and README "Running on a Raspberry Pi"
# for the same tests on a real board.
#
#   scripts/hil.sh                 both architectures (HIL_ARCHS="arm64 armhf")
#   HIL_ARCHS=arm64 scripts/hil.sh one
#   HIL_BREAK=bme280,edge-true scripts/hil.sh   invert those checks (names
#                                  in the tests; "all" inverts every one):
#                                  shows each check can fail
#   HIL=0                          skip (test.sh honours it)
#
# Caches in .cache/hil/ (downloads, unpacked kernel, modules, logs). Exits
# non-zero on any FAIL, a missing HIL-RESULT or a missing HIL-DONE.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
ARCHS=${HIL_ARCHS:-arm64 armhf}
CACHE=${HIL_CACHE:-$PWD/.cache/hil}
TIMEOUT=${HIL_TIMEOUT:-300}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

T0=$(now)
scripts/hil/setup-host.sh || true
for q in qemu-system-aarch64 qemu-system-arm; do
  if ! command -v $q >/dev/null 2>&1; then
    echo "== HIL SKIPPED: $q is not available and could not be installed (apt-get install qemu-system-arm); this host cannot run the HIL VM"
    exit 0
  fi
done
echo "hil: host setup $(since "$T0") s"

version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
status=0
for arch in $ARCHS; do
  A0=$(now)
  t=$(now)
  eval "$(scripts/hil/prepare.sh "$arch")"   # KVER ROOT MODULES
  echo "hil[$arch]: kernel $KVER, modules ready in $(since "$t") s"

  W=$CACHE/run-$arch; rm -rf "$W"; mkdir -p "$W/initrd/tests" "$W/initrd/bin" "$W/initrd/lib/modules"
  I=$W/initrd
  t=$(now)
  case $arch in
    arm64) goenv=("GOARCH=arm64"); extra=("GOARCH=arm GOARM=6:armv6") ;;
    armhf) goenv=("GOARCH=arm" "GOARM=6"); extra=() ;;
  esac
  build() { # ENV... -- go args
    env CGO_ENABLED=0 GOOS=linux "$@"
  }
  pfx=${arch}
  for pkg in hal/periph devices/bmx280 devices/ads1115; do
    build "${goenv[@]}" go test -c -tags hil -trimpath -o "$I/tests/$pfx-$(basename $pkg).test" "./$pkg"
  done
  for e in "${extra[@]}"; do  # a 32-bit userland on the 64-bit kernel (Pi OS 32-bit on a Pi 4)
    envs=${e%%:*}; name=${e#*:}
    # shellcheck disable=SC2086
    build $envs go test -c -tags hil -trimpath -o "$I/tests/$name-periph.test" ./hal/periph
  done
  build "${goenv[@]}" go build -tags nethttpomithttp2 -trimpath -ldflags "-s -w -X main.version=$version -X main.commit=$(git rev-parse --short HEAD)" -o "$I/bin/agent" ./cmd/agent
  echo "hil[$arch]: test binaries and agent built in $(since "$t") s"

  t=$(now)
  cp "$ROOT/bin/busybox" "$I/bin/busybox"
  cp scripts/hil/init "$I/init"
  cp scripts/hil/agent-scenario.sh "$I/agent-scenario.sh"
  mkdir -p "$I/etc/pinshadow"; cp scripts/hil/agent.yaml "$I/etc/pinshadow/config.yaml"
  go run ./hil/fixture/gen -bus 1 > "$I/fixture.sh"
  cp "$MODULES"/*.ko "$I/lib/modules/"
  cp "$ROOT/lib/modules/$KVER/kernel/fs/configfs/configfs.ko" "$ROOT/lib/modules/$KVER/kernel/drivers/i2c/i2c-dev.ko" "$I/lib/modules/"
  mkdir -p "$I/proc" "$I/sys" "$I/dev" "$I/tmp"
  (cd "$I" && find . | cpio -o -H newc --quiet | gzip -1) > "$W/initrd.gz"
  echo "hil[$arch]: initramfs $(du -h "$W/initrd.gz" | cut -f1) in $(since "$t") s"

  append="quiet panic=-1 rdinit=/init PINSHADOW_HIL_BREAK=${HIL_BREAK:-}"
  case $arch in
    arm64) qemu=(qemu-system-aarch64 -M virt -cpu cortex-a72); append="console=ttyAMA0 $append" ;;
    armhf) qemu=(qemu-system-arm -M virt -cpu cortex-a15); append="console=ttyAMA0 $append" ;;
  esac
  t=$(now)
  log=$W/console.log
  timeout "$TIMEOUT" "${qemu[@]}" -accel tcg,thread=multi -m 1024 -smp 2 -nographic -no-reboot -net none \
    -kernel "$ROOT/boot/vmlinuz-$KVER" -initrd "$W/initrd.gz" -append "$append" </dev/null >"$log" 2>&1 || {
    echo "hil[$arch]: qemu ended with status $? (124 = timeout after $TIMEOUT s)"; }
  tr -d '\r' < "$log" > "$log.txt"
  echo "hil[$arch]: VM ran $(since "$t") s"

  # ---- results -------------------------------------------------------------
  expected=$(cd "$I/tests" && ls *.test | sed 's/\.test$//')
  [ -x "$I/agent-scenario.sh" ] && expected="$expected agent"
  bad=0
  for n in $expected; do
    r=$(awk -v n="$n" '$1 == "HIL-RESULT" && $2 == n { print $3 }' "$log.txt" | tail -1)
    case $r in
      PASS) echo "hil[$arch]: $n PASS" ;;
      FAIL) echo "hil[$arch]: $n FAIL"; bad=1 ;;
      *) echo "hil[$arch]: $n: no result (crash or timeout)"; bad=1 ;;
    esac
  done
  grep -q '^HIL-DONE' "$log.txt" || { echo "hil[$arch]: no HIL-DONE marker: the guest did not finish"; bad=1; }
  grep '^HIL-SETUP-FAIL' "$log.txt" && bad=1
  if [ $bad = 1 ]; then
    echo "hil[$arch]: FAILED — console log $log.txt; failing tests:"
    grep -E -- '^(--- FAIL|HIL-|panic:|    .*_test\.go)' "$log.txt" | head -80 || true
    status=1
  else
    grep -E -- '^--- SKIP' "$log.txt" | sed "s/^/hil[$arch]: /" || true
  fi
  echo "hil[$arch]: total $(since "$A0") s"
done
echo "hil: all done in $(since "$T0") s"
exit $status
