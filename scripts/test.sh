#!/usr/bin/env bash
# The project's test command (README quick start; .ci/run calls it).
# Installs what the tests need when it is missing, then runs formatting and
# vet checks and the whole test suite with the race detector.
#
#   scripts/test.sh            default run (CI)
#   FULL=1 scripts/test.sh     also the long soak/fuzz runs
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
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

echo "== go test -race"
go test -race -count=1 -timeout 12m ./...

if [ "${FULL:-0}" = 1 ]; then
  echo "== fuzz (FULL=1)"
  go test -run '^$' -fuzz '^FuzzUpdate$' -fuzztime "${FUZZTIME:-2m}" ./localcloud/shadow
fi
