package config_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/config"
	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/iot/sigv4"
)

type valveOptions struct {
	Pin string `yaml:"pin"`
}

func (o *valveOptions) Validate() error {
	if o.Pin == "" {
		return devices.Invalidf("pin is required")
	}
	return nil
}

// testRegistry has a driver with an enum property and a write-only one,
// which no built-in driver has.
func testRegistry(t *testing.T) *devices.Registry {
	t.Helper()
	r, err := devices.NewRegistry(devices.Define("valve", "test valve",
		func() valveOptions { return valveOptions{} },
		func(valveOptions) []devices.Property {
			return []devices.Property{
				{Name: "position", Type: devices.TypeEnum, Choices: []string{"open", "closed", "half"}, Readable: true, Writable: true},
				{Name: "pulse", Type: devices.TypeBool, Writable: true},
			}
		},
		func(context.Context, devices.Env, valveOptions) (devices.Device, error) { return nil, nil }))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestEnumAndWriteOnlyProperties(t *testing.T) {
	body := head + `devices:
  - {id: valve, driver: valve, pin: GPIO5}
shadows:
  - desired:
      valve:
        device: valve
        property: position
        enum: [open, clsed]
        boot: half
        failsafe: {value: shut, after: 1m}
        interlock: water
    reported:
      pulse: {device: valve, property: pulse}
`
	_, err := config.Parse("main.yaml", config.Options{ReadFile: files{"main.yaml": body}.read, LookupEnv: env(nil), Registry: testRegistry(t)})
	want := []string{
		`main.yaml:13:22: desired key "valve": "clsed" is not a choice of position; allowed: open, closed, half; did you mean "closed"?`,
		`main.yaml:16:20: desired key "valve": interlock needs a bool or number property (on = true or above 0); valve.position is an enum`,
		`main.yaml:18:40: reported key "pulse" maps to valve.pulse, which is write-only; reported keys need a readable property`,
	}
	if got := problems(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// With the enum fixed, boot and failsafe are checked against it.
	body = strings.Replace(body, "clsed", "closed", 1)
	body = strings.Replace(body, "        interlock: water\n", "", 1)
	body = strings.Replace(body, "    reported:\n      pulse: {device: valve, property: pulse}\n", "", 1)
	_, err = config.Parse("main.yaml", config.Options{ReadFile: files{"main.yaml": body}.read, LookupEnv: env(nil), Registry: testRegistry(t)})
	want = []string{
		`main.yaml:14:15: desired key "valve": boot "half" is not one of the choices; allowed: open or closed`,
		`main.yaml:15:27: desired key "valve": failsafe value "shut" is not one of the choices; allowed: open or closed`,
	}
	if got := problems(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestEveryProblemAtOnce: one file with mistakes in every section gets
// them all, in file order, each once.
func TestEveryProblemAtOnce(t *testing.T) {
	body := `thing: ""
board: pi4b
connection:
  endpoint: example.com:99999
  transport: wss
  cert: device.pem
  keepalive: 60s
devices:
  - {id: a, driver: relay, pin: GPIO17}
  - {id: b, driver: relay, pin: GPIO17}
  - {id: c, driver: bme280, bus: 1, address: 0x77}
  - {id: d, driver: bmp280, bus: 1, address: 0x77}
shadows:
  - desired: {a: a, x: c}
    reported: {t: {device: c, property: temperature, update_interval: 50ms}}
`
	_, err := parse(t, files{"main.yaml": body}, nil)
	want := []string{
		`main.yaml:1:8: thing is empty; give the AWS IoT thing name (1–128 of a-z A-Z 0-9 : _ -)`,
		`main.yaml:4:13: endpoint "example.com:99999": port "99999" must be 1–65535`,
		`main.yaml:6:3: cert is only used with transport tls or alpn (certificate authentication), not wss; remove it`,
		`main.yaml:7:3: unknown key "keepalive" in connection; did you mean "keep_alive"?`,
		`main.yaml:10:33: GPIO17 (pin 11) is already used by device "a" (main.yaml:9:33); give each device its own pin`,
		`main.yaml:12:46: I2C address 0x77 on bus 1 is already used by device "c" (main.yaml:11:46); two chips on one bus need different addresses: change one chip's address pins, or move it to another bus`,
		`main.yaml:14:24: desired key "x": device "c" (bme280) has no writable property (temperature, pressure or humidity: read-only); map it under reported instead`,
		`main.yaml:15:71: reported key "t": update_interval 50ms is too short; allowed: 100ms or more`,
	}
	if got := problems(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSysfsDriverOptionsBlock(t *testing.T) {
	body := head + `devices:
  - id: water
    driver: ds18b20
    options: {id: 28-0316a2792aff}
  - id: bad
    driver: ds18b20
    options: {id: 28-XYZ, zone: 1}
shadows:
  - reported: {water: water}
`
	_, err := parse(t, files{"main.yaml": body}, nil)
	want := []string{
		`main.yaml:12:19: device "bad" (ds18b20): id "28-XYZ" is not a 1-wire thermometer name like 28-0316a2792aff (family 10, 22, 28, 3b or 42, then 12 hex digits, lower case)`,
		`main.yaml:12:27: unknown key "zone" in device "bad" (ds18b20) options; allowed: id`,
	}
	if got := problems(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	body = strings.Replace(body, ", zone: 1", "", 1)
	_, err = parse(t, files{"main.yaml": body}, nil)
	want = []string{
		`main.yaml:12:19: device "bad" (ds18b20): id "28-XYZ" is not a 1-wire thermometer name like 28-0316a2792aff (family 10, 22, 28, 3b or 42, then 12 hex digits, lower case)`,
	}
	if got := problems(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestWSSConnection(t *testing.T) {
	body := `thing: pi-1
board: pi4b
connection:
  endpoint: abc-ats.iot.eu-west-1.amazonaws.com
  transport: wss
  region: eu-west-1
  credentials: {source: file, profile: devices, file: /etc/pinshadow/credentials}
  backoff: {jitter: equal}
  queue: {disabled: true}
shadows: []
`
	cfg, err := parse(t, files{"main.yaml": body}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Connection
	if c.Endpoint != "abc-ats.iot.eu-west-1.amazonaws.com" || c.Region != "eu-west-1" || !c.Queue.Disabled ||
		c.Credentials != (config.Credentials{Source: "file", File: "/etc/pinshadow/credentials", Profile: "devices"}) {
		t.Errorf("connection %+v", c)
	}
	ic := c.IOT(nil)
	if sf, ok := ic.Credentials.(sigv4.SharedFile); !ok || sf.Profile != "devices" || sf.Path != "/etc/pinshadow/credentials" {
		t.Errorf("credentials provider %#v, want the shared file's devices profile", ic.Credentials)
	}
	if ic.Backoff.Jitter != iot.JitterEqual || ic.Backoff.Base != time.Second || ic.Backoff.Max != 32*time.Second {
		t.Errorf("backoff %+v: jitter equal, the rest defaults", ic.Backoff)
	}

	body = strings.Replace(body, "transport: wss", "transport: tls\n  cert: c.pem\n  key: k.pem", 1)
	body = strings.Replace(body, "source: file", "source: vault", 1)
	_, err = parse(t, files{"main.yaml": body}, nil)
	want := []string{
		`main.yaml:8:3: region is only used with transport wss (SigV4 signing), not tls; remove it`,
		`main.yaml:9:3: credentials is only used with transport wss (SigV4 signing), not tls; remove it`,
		`main.yaml:9:25: credentials source "vault" is not allowed; allowed: default, env or file`,
	}
	if got := problems(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestNestedOptionKeys(t *testing.T) {
	body := head + `devices:
  - id: soil
    driver: ads1115
    bus: 1
    channels:
      - {name: moisture, input: "0", fullscale: 4.096}
      - [a0]
shadows: []
`
	_, err := parse(t, files{"main.yaml": body}, nil)
	want := []string{
		`main.yaml:11:38: unknown key "fullscale" in device "soil" (ads1115) channels[0]; did you mean "full_scale"?`,
		`main.yaml:12:9: device "soil" (ads1115) channels[1] must be a mapping, not a list`,
	}
	if got := problems(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
