#!/usr/bin/env bash
# The soak (RELIABILITY.md "Soak"): one agent process with 20 sensors at
# 1 Hz and a desired change a minute, against the embedded local cloud, for
# DURATION (default 1h). Prints RSS, heap after GC and goroutines every
# SAMPLE; fails on an error in the agent's log, growing goroutines, a desired
# change not applied, or (RSS=1, the default here) RSS growth over 1 MB after
# warm-up.
#
#   scripts/soak.sh                        one hour
#   DURATION=5m RSS=0 scripts/soak.sh      the trend only (scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

duration="${DURATION:-1h}"
sample="${SAMPLE:-1m}"
rss=true
if [ "${RSS:-1}" = 0 ]; then rss=false; fi
echo "== soak for $duration (samples every $sample) on $(nproc) cores, $(uname -m), $(go version | cut -d' ' -f3)"
go test -tags faults -count=1 -timeout 0 -v -run '^TestSoak$' ./agent/ \
  -soak.duration="$duration" -soak.sample="$sample" -soak.rss="$rss" 2>&1 \
  | awk '/^(soak trend| |--- |ok|FAIL|PASS|panic)/ && !/level=/ && !/^    [a-z_]+\.go:/'
