package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestShippedConfigsValidate runs `agent validate` on every file in
// configs/: what we ship must pass our own check.
func TestShippedConfigsValidate(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil || len(files) < 10 {
		t.Fatalf("configs/*.yaml: %v, %d files; want sim.yaml, greenhouse-pi.yaml and one per device family", err, len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			code, out, errOut := runAgentCmd(t, "validate", "--config", f)
			if code != 0 || !strings.HasPrefix(out, "ok: ") {
				t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			}
		})
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const cliHead = `thing: greenhouse
board: pi4b
connection:
  endpoint: 127.0.0.1
  transport: tcp
`

func TestValidateCommand(t *testing.T) {
	good := writeConfig(t, cliHead+`devices:
  - {id: heater, driver: relay, pin: GPIO17}
  - {id: air, driver: bme280, bus: 1}
shadows:
  - desired: {heater: heater}
    reported: {temperature: air.temperature, humidity: air.humidity}
`)
	code, out, errOut := runAgentCmd(t, "validate", "--config", good)
	if code != 0 || out != "ok: 2 devices, 1 desired keys, 2 reported keys\n" || errOut != "" {
		t.Errorf("valid config: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	bad := writeConfig(t, cliHead+`devices:
  - {id: heater, driver: rely, pin: GPIO17}
  - {id: fan, driver: fan, channel: GPIO17}
shadows:
  - desired: {heater: heater, fan: fna}
`)
	code, out, errOut = runAgentCmd(t, "validate", "--config", bad)
	want := bad + `:7:26: device "heater": unknown driver "rely"; allowed: ads1115, aht20, bh1750, bme280, bmp280, button, cpu_temp, ds18b20, fan, ina219, led, mcp23017, pca9685, pir, pwm, relay, servo, sht3x, switch; did you mean "relay"?
` + bad + `:8:37: device "fan": pin "GPIO17": no hardware PWM on GPIO17 (pin 11); PWM pins on Raspberry Pi 4 Model B: GPIO12 (pin 32), GPIO18 (pin 12), GPIO13 (pin 33), GPIO19 (pin 35)
` + bad + `:10:36: desired key "fan": unknown device "fna"; allowed: fan; did you mean "fan"?
agent validate: 3 problems in ` + bad + "\n"
	if code != 1 || out != "" || errOut != want {
		t.Errorf("broken config: exit %d, stdout %q, stderr\n%s\nwant exit 1 and stderr\n%s", code, out, errOut, want)
	}

	// --board checks the same file against another model.
	code, _, errOut = runAgentCmd(t, "validate", "--config", good, "--board", "generic")
	if code != 1 || !strings.Contains(errOut, `:7:38: device "heater": unknown pin "GPIO17": the generic profile has no GPIO numbering; use the kernel line name or chip/offset (see gpioinfo), or set the board`) {
		t.Errorf("--board generic: exit %d, stderr %q", code, errOut)
	}

	for _, args := range [][]string{
		{"validate"},
		{"validate", "--config", good, "--board", "pi6"},
		{"validate", "--config", good, "extra"},
	} {
		if code, _, errOut := runAgentCmd(t, args...); code != 2 || !strings.Contains(errOut, "run 'agent validate -h' for usage") {
			t.Errorf("%q: exit %d, stderr %q; want usage error 2", args, code, errOut)
		}
	}
	code, _, errOut = runAgentCmd(t, "validate", "--config", filepath.Join(t.TempDir(), "nope.yaml"))
	if code != 1 || !strings.Contains(errOut, "cannot read the configuration file") || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: exit %d, stderr %q", code, errOut)
	}
}

func TestPlanCommand(t *testing.T) {
	p := writeConfig(t, cliHead+`devices:
  - {id: heater, driver: relay, pin: GPIO17}
  - {id: fan, driver: fan, channel: pin12}
  - {id: air, driver: bme280, bus: 1, address: 0x77}
shadows:
  - desired:
      heater: {device: heater, interlock: climate}
      fan: {device: fan, interlock: climate}
    reported:
      temperature: {device: air, property: temperature, update_interval: 30s}
  - name: system
    reported:
      pressure: {device: air, property: pressure, update_interval: 5m}
`)
	code, out, errOut := runAgentCmd(t, "plan", "--config", p)
	want := `thing greenhouse on Raspberry Pi 4 Model B (pi4b)

SHADOW KEY       DEVICE  PROPERTY     WIRING                             DIRECTION  INTERVAL
heater           heater  on           GPIO17 (pin 11)                    desired    on change
fan              fan     speed        PWM pwmchip0/0 on GPIO18 (pin 12)  desired    on change
temperature      air     temperature  I2C bus 1 @ 0x77                   reported   30s
system:pressure  air     pressure     I2C bus 1 @ 0x77                   reported   5m0s

interlock climate: at most one of heater, fan on at a time
`
	if code != 0 || out != want || errOut != "" {
		t.Errorf("exit %d, stderr %q, stdout\n%s\nwant\n%s", code, errOut, out, want)
	}
	code, out, errOut = runAgentCmd(t, "plan", "--config", writeConfig(t, cliHead+"shadows:\n  - desired: {x: nowhere}\n"))
	if code != 1 || out != "" || !strings.Contains(errOut, `:7:18: desired key "x": unknown device "nowhere"; no devices are defined: add it under devices: (id, driver and its wiring)`) {
		t.Errorf("broken config: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestValidateAutoBoardOffPi: with board: auto on a machine that is not a
// Pi, pins are checked against a Pi 4 and stderr says so.
func TestValidateAutoBoardOffPi(t *testing.T) {
	if _, err := os.Stat("/proc/device-tree/model"); err == nil {
		t.Skip("this machine has a device-tree model: detection decides the board")
	}
	code, out, errOut := runAgentCmd(t, "validate", "--config", "../../configs/greenhouse-pi.yaml")
	want := "note: board is auto and this machine is not a Raspberry Pi: pins checked against pi4b (the 40-pin header of every Pi since the B+); use --board to choose another model\n"
	if code != 0 || out != "ok: 8 devices, 4 desired keys, 6 reported keys\n" || errOut != want {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runAgentCmd(t, "validate", "--config", "../../configs/greenhouse-pi.yaml", "--board", "pi5")
	if code != 0 || out != "ok: 8 devices, 4 desired keys, 6 reported keys\n" || errOut != "" {
		t.Errorf("--board pi5: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestReadmeConfigExample keeps the YAML shown in the README valid.
func TestReadmeConfigExample(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "thing: greenhouse-01 ")
	if start < 0 {
		t.Fatal("README has no configuration example starting with thing: greenhouse-01")
	}
	end := strings.Index(s[start:], "```")
	p := writeConfig(t, strings.ReplaceAll(s[start:start+end], "${AWS_IOT_ENDPOINT}", "abc-ats.iot.eu-west-1.amazonaws.com"))
	if code, out, errOut := runAgentCmd(t, "validate", "--config", p, "--board", "pi4b"); code != 0 {
		t.Errorf("README example: exit %d, stdout %q, stderr\n%s", code, out, errOut)
	}
}
