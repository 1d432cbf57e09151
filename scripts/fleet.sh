#!/usr/bin/env bash
# The 1,000-device fleet runs behind the figures in RELIABILITY.md and
# BENCHMARKS.md (not part of scripts/test.sh: each takes a minute or more and
# wants a quiet machine).
#
#   scripts/fleet.sh                 steady run, then a broker restart run
#   DEVICES=200 DURATION=30s scripts/fleet.sh
#   PROFILE=/tmp/fleet scripts/fleet.sh   also write CPU and heap profiles
#
# Exits non-zero when an accepted desired change was lost or a device did
# not reconnect after the restart.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

DEVICES=${DEVICES:-1000}
DURATION=${DURATION:-60s}
RESTART_AT=${RESTART_AT:-30s}
bin=$(mktemp -d)/agent
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/agent

echo "== machine: nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(go version | cut -d' ' -f3-)"
echo "== load before: $(cut -d' ' -f1-3 /proc/loadavg)"
prof=()
if [ -n "${PROFILE:-}" ]; then prof=(--profile "$PROFILE-steady"); fi
echo "== steady: $DEVICES devices, report every 1s, desired every 10s, $DURATION"
"$bin" fleet --devices "$DEVICES" --duration "$DURATION" "${prof[@]}"
echo "== load: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "${PROFILE:-}" ]; then prof=(--profile "$PROFILE-restart"); fi
echo "== broker restart at $RESTART_AT (shadows on disk so they survive it)"
"$bin" fleet --devices "$DEVICES" --duration "$DURATION" --restart-broker-at "$RESTART_AT" "${prof[@]}"
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
