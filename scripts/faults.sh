#!/usr/bin/env bash
# The fault suite (RELIABILITY.md "Faults"): broker restarts, kill -9 of the
# agent process, a silent link, a full or unusable state directory, wall-clock
# steps, hostile input, a plaintext client on the TLS port; then every fuzz
# target for FUZZTIME. Full counts by default; SHORT=1 runs a few iterations
# of each scenario and no fuzzing (what scripts/test.sh runs).
#
#   scripts/faults.sh                  full run (about 5 min + 5 × FUZZTIME)
#   SHORT=1 scripts/faults.sh          the short version (about 1.5 min)
#   SEED=7 FUZZTIME=5m scripts/faults.sh
#   KNOWN=1 scripts/faults.sh          also the scenarios of known, unfixed gaps
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

seed="${SEED:-1}"
if [ "${SHORT:-0}" = 1 ]; then
  restarts=5 kills=5 silences=1
else
  restarts=50 kills=50 silences=3
fi
known=false
if [ "${KNOWN:-0}" = 1 ]; then known=true; fi

# Each scenario's figures (counts, detection times) without the agent's own
# log lines; pipefail keeps go test's verdict.
summary() { awk '/^(=== RUN|--- |ok|FAIL|PASS|panic)/ || /^ +--- / || (/faultsuite_/ && !/level=/)'; }

# The tagged files are outside test.sh's plain go vet.
go vet -tags faults ./agent/ ./localcloud/

echo "== fault suite (seed $seed: $restarts broker restarts, $kills kill -9, $silences silent links)"
go test -tags faults -count=1 -timeout 30m -v -run '^TestFault' ./agent/ \
  -faults.seed="$seed" -faults.restarts="$restarts" -faults.kills="$kills" \
  -faults.silences="$silences" -faults.known="$known" 2>&1 | summary
go test -tags faults -count=1 -timeout 5m -v -run '^TestFault' ./localcloud/ 2>&1 | summary

if [ "${SHORT:-0}" != 1 ]; then
  for target in localcloud/shadow:FuzzUpdate config:FuzzLoad shadowsync/reconcile:FuzzPlan \
                shadowsync/reconcile:FuzzSensors filter:FuzzChain; do
    echo "== fuzz ${target#*:} in ./${target%%:*} for ${FUZZTIME:-2m}"
    go test -run '^$' -fuzz "^${target#*:}\$" -fuzztime "${FUZZTIME:-2m}" "./${target%%:*}"
  done
fi
