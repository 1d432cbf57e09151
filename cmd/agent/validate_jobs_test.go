package main

import (
	"strings"
	"testing"
)

// validate and plan say which job types the agent will run and how;
// reboot is not among them unless the section names it.
func TestValidateAndPlanShowJobs(t *testing.T) {
	p := writeConfig(t, cliHead+`devices:
  - {id: heater, driver: relay, pin: GPIO17}
shadows:
  - desired: {heater: heater}
jobs:
  step_timeout: 20m
  handlers: {dir: /etc/pinshadow/handlers, timeout: 2m}
  apply_config: {}
`)
	want := "jobs: set-desired, pulse, run-handler, apply-config; step timeout 20m0s; handlers from /etc/pinshadow/handlers as the agent's user (timeout 2m0s, at most 2m0s)\n"
	code, out, errOut := runAgentCmd(t, "validate", "--config", p)
	if code != 0 || out != "ok: 1 devices, 1 desired keys, 0 reported keys\n"+want {
		t.Errorf("validate: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runAgentCmd(t, "plan", "--config", p)
	if code != 0 || !strings.HasSuffix(out, "\n\n"+want) {
		t.Errorf("plan: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
