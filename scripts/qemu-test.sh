#!/usr/bin/env bash
# Cross-arch tests under qemu-user: `go test -short` of every package (the
# hil-tagged tests are not built without -tags hil) as 32-bit ARMv6 (Pi
# Zero/1 core), ARMv7 (Pi 2/3 32-bit) and arm64, through `go test -exec`.
# Catches 64-bit atomic alignment on 32-bit ARM, int overflow where int is
# 32 bits, and GOARM mistakes. Then shows the ARMv6 guard is real: a GOARM=7
# binary dies with SIGILL on the arm1176 core, the GOARM=6 one runs.
#
#   scripts/qemu-test.sh                  all three
#   QEMU_TARGETS="armv6" scripts/qemu-test.sh
#
# -short drops three tests of cmd/agent (see README "Running on a Raspberry
# Pi"): two build the agent binary with the inherited GOARCH and exec it
# (no binfmt_misc here, so the ARM binary cannot be exec'd: "exec format
# error"), one runs a 16 s simulation.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin"
scripts/hil/setup-host.sh user
T0=$(date +%s)
targets=${QEMU_TARGETS:-armv6 armv7 arm64}
status=0
for t in $targets; do
  case $t in
    armv6) envs=(GOARCH=arm GOARM=6); exec_="qemu-arm-static -cpu arm1176" ;;
    armv7) envs=(GOARCH=arm GOARM=7); exec_="qemu-arm-static -cpu cortex-a7" ;;
    arm64) envs=(GOARCH=arm64); exec_="qemu-aarch64-static -cpu cortex-a53" ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
  s=$(date +%s)
  echo "== go test -short under $exec_ (${envs[*]})"
  log=$(mktemp)
  rc=0
  env CGO_ENABLED=0 "${envs[@]}" PINSHADOW_QEMU=1 go test -short -count=1 -timeout 10m -exec "$exec_" ./... >"$log" 2>&1 || rc=$?
  grep -v -e '^ok ' -e 'no test files' "$log" || true
  rm -f "$log"
  if [ $rc != 0 ]; then echo "== $t: FAILED"; status=1; else echo "== $t: ok in $(( $(date +%s) - s )) s"; fi
done

echo "== ARMv6 guard: GOARM=7 must not run on arm1176, GOARM=6 must"
G=$(mktemp -d); trap 'rm -rf "$G"' EXIT
CGO_ENABLED=0 GOARCH=arm GOARM=7 go build -o "$G/v7" ./cmd/agent
CGO_ENABLED=0 GOARCH=arm GOARM=6 go build -o "$G/v6" ./cmd/agent
set +e
qemu-arm-static -cpu arm1176 "$G/v7" version >/dev/null 2>&1; rc7=$?
qemu-arm-static -cpu arm1176 "$G/v6" version >/dev/null 2>&1; rc6=$?
set -e
if [ $rc7 = 132 ] && [ $rc6 = 0 ]; then
  echo "   GOARM=7 on arm1176: exit 132 (SIGILL), GOARM=6: exit 0 — ok"
else
  echo "   GOARM=7 on arm1176: exit $rc7 (want 132, SIGILL); GOARM=6: exit $rc6 (want 0) — FAILED"
  status=1
fi
echo "== qemu-user tests done in $(( $(date +%s) - T0 )) s"
exit $status
