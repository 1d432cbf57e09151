#!/bin/sh
# The agent binary in the HIL VM (run by scripts/hil/init): `agent cloud`
# on 127.0.0.1, `agent run` with scripts/hil/agent.yaml, and the cloud side
# through `agent shadow`. Checks, through gpio-sim's files (not the agent):
#   a desired relay=true/false reaches GPIO17's simulated line;
#   pressing the button (GPIO23 pulled low) is reported as button=true;
#   the BME280's datasheet reading is reported (temperature 25.08).
# Exit status 0 = pass. PINSHADOW_HIL_BREAK=agent (or all) expects the
# wrong levels, to show the scenario can fail.
set -u
cfg=/sys/kernel/config/gpio-sim/pi
sim=/sys/devices/platform/$(cat $cfg/dev_name)/$(cat $cfg/bank0/chip_name)
EP=127.0.0.1:1883
T0=$(date +%s)
say() { echo "agent-scenario [$(( $(date +%s) - T0 ))s]: $*"; }
# until SECONDS CMD...: retry CMD every 0.2 s for up to SECONDS.
until_ok() {
  n=$(( $1 * 5 )); shift
  while [ $n -gt 0 ]; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2; n=$((n - 1))
  done
  return 1
}
line_is() { [ "$(cat $sim/sim_gpio$1/value)" = "$2" ]; }
reported_has() { agent shadow get --endpoint $EP --thing hil --timeout 2s 2>/dev/null | tr -d ' \n' | grep -q "$1"; }
fail() {
  say "FAIL: $*"
  echo "--- agent log"; tail -40 /tmp/agent.log
  echo "--- cloud log"; tail -10 /tmp/cloud.log
  echo "--- shadow"; agent shadow get --endpoint $EP --thing hil --timeout 2s
  exit 1
}

mkdir -p /etc/pinshadow /tmp/state
agent version
agent cloud --listen $EP > /tmp/cloud.log 2>&1 &
CLOUD=$!
agent run --config /etc/pinshadow/config.yaml > /tmp/agent.log 2>&1 &
AGENT=$!
trap 'kill $AGENT $CLOUD 2>/dev/null' EXIT

on=1; off=0
case ",${PINSHADOW_HIL_BREAK:-}," in *,agent,*|*,all,*) true ;; *) false ;; esac && { on=0; off=1; }

until_ok 30 line_is 17 0 || fail "GPIO17 not driven low at boot (boot: false)"
say "relay off at boot"
until_ok 30 agent shadow update --endpoint $EP --thing hil --desired relay=true --timeout 2s || fail "shadow update"
until_ok 30 line_is 17 $on || fail "desired relay=true did not reach GPIO17 (sim value $(cat $sim/sim_gpio17/value))"
say "desired relay=true → GPIO17 high"
agent shadow update --endpoint $EP --thing hil --desired relay=false --timeout 5s >/dev/null || fail "shadow update"
until_ok 30 line_is 17 $off || fail "desired relay=false did not reach GPIO17"
say "desired relay=false → GPIO17 low"
until_ok 30 reported_has '"relay":false' || fail "relay=false not reported back"

until_ok 30 reported_has '"button":false' || fail "button not reported released"
echo pull-down > $sim/sim_gpio23/pull
until_ok 30 reported_has '"button":true' || fail "button press (GPIO23 low) not reported"
say "button press reported"
until_ok 30 reported_has '"temperature":25.08' || fail "BME280 temperature 25.08 not reported"
say "BME280 temperature 25.08 reported"
agent status --config /etc/pinshadow/config.yaml 2>&1 | head -20
exit 0
