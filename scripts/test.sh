#!/usr/bin/env bash
# The project's test command (README quick start; .ci/run calls it).
# Installs what the tests need when it is missing, then runs formatting and
# vet checks and the whole test suite with the race detector.
#
#   scripts/test.sh            default run (CI)
#   FULL=1 scripts/test.sh     also the long soak/fuzz runs
#   HIL=0 scripts/test.sh      without the hardware-in-the-loop VM
#   FAULTS=0 / SOAK=0          without the short fault suite / 5-minute soak
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
# Headless Chromium for the web console's browser test.
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Debian installs mosquitto in /usr/sbin, which is not on every PATH.
export PATH="$PATH:/usr/sbin"

# The unmodified AWS IoT Device SDK for JavaScript v1, for the interop test
# (versions pinned by scripts/interop/package-lock.json).
if [ ! -d scripts/interop/node_modules/aws-iot-device-sdk ]; then
  echo "== installing the AWS IoT Device SDK (npm) for interop tests"
  (cd scripts/interop && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

# ---- issue 8: short fault suite and 5-minute soak, in the background -------
# (both mostly wait on timers and the network; their output is printed, and a
# failure fails the run, at the end). FAULTS=0 / SOAK=0 skip them.
bg_logs=$(mktemp -d)
bg_pids=()
# Each in its own session, so a failing step before the wait stops them and
# their test processes (kill of the whole group on exit).
trap 'for e in "${bg_pids[@]}"; do kill -- "-${e%%:*}" 2>/dev/null || true; done' EXIT
if [ "${FAULTS:-1}" != 0 ]; then
  SHORT=1 setsid bash scripts/faults.sh >"$bg_logs/faults.log" 2>&1 & bg_pids+=("$!:faults")
fi
if [ "${SOAK:-1}" != 0 ]; then
  DURATION="${SOAK_DURATION:-5m}" SAMPLE=30s RSS=0 setsid bash scripts/soak.sh >"$bg_logs/soak.log" 2>&1 & bg_pids+=("$!:soak")
fi
wait_background() {
  local failed=0 entry
  for entry in "${bg_pids[@]}"; do
    echo "== ${entry#*:} (background, scripts/${entry#*:}.sh)"
    if wait "${entry%%:*}"; then cat "$bg_logs/${entry#*:}.log"; else
      cat "$bg_logs/${entry#*:}.log"; echo "== ${entry#*:} FAILED"; failed=1; fi
  done
  bg_pids=()
  return $failed
}
# ---- end issue 8 (the wait is after the HIL step) ------------------------------

echo "== go test -race"
go test -race -count=1 -timeout 12m ./...

# The web console in headless Chromium against `agent sim` (build tag
# browser); its screenshots are kept in test-artifacts/console-screenshots
# (not dist/: cross-build.sh starts dist/ afresh).
echo "== web console in headless Chromium"
PINSHADOW_ARTIFACTS="${PINSHADOW_ARTIFACTS:-$PWD/test-artifacts/console-screenshots}" \
  go test -tags browser -count=1 -timeout 5m -run '^TestBrowser' -v ./cmd/agent/

# ---- issue 6: ARM builds, cross-arch tests, hardware-in-the-loop VM ---------
# (scripts/qemu-test.sh, scripts/cross-build.sh, scripts/hil.sh install what
# they need: qemu-user-static, qemu-system-arm, cross gcc-12, cpio, kmod.)
echo "== cross-arch tests under qemu-user (armv6, armv7, arm64)"
bash scripts/qemu-test.sh

echo "== cross-build and .deb packages (dist/)"
bash scripts/cross-build.sh

if [ "${HIL:-1}" = 0 ]; then
  echo "== HIL VM SKIPPED (HIL=0)"
else
  echo "== hardware-in-the-loop VM (arm64, armhf)"
  bash scripts/hil.sh
fi
# ---- end issue 6 --------------------------------------------------------------

wait_background  # issue 8: the fault suite and the soak started above

# The default run executes every fuzz target's seed corpus (as plain tests);
# FULL=1 also fuzzes each for FUZZTIME.
if [ "${FULL:-0}" = 1 ]; then
  for target in localcloud/shadow:FuzzUpdate config:FuzzLoad shadowsync/reconcile:FuzzPlan \
                shadowsync/reconcile:FuzzSensors filter:FuzzChain discovery:FuzzParse \
                localcloud/jobs:FuzzHandle jobs:FuzzReply agent/jobrun:FuzzDecodeApplyConfig \
                agent/jobrun:FuzzCheck agent/jobrun:FuzzDetails; do
    echo "== fuzz ${target#*:} in ./${target%%:*} for ${FUZZTIME:-2m} (FULL=1)"
    go test -run '^$' -fuzz "^${target#*:}\$" -fuzztime "${FUZZTIME:-2m}" "./${target%%:*}"
  done
fi
