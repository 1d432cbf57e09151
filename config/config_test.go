package config_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/config"
	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/shadowsync/reconcile"
)

// files is an in-memory file system for Parse.
type files map[string]string

func (f files) read(name string) ([]byte, error) {
	s, ok := f[name]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return []byte(s), nil
}

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func parse(t *testing.T, fsys files, vars map[string]string) (*config.Config, error) {
	t.Helper()
	return config.Parse("main.yaml", config.Options{ReadFile: fsys.read, LookupEnv: env(vars)})
}

// problems returns the messages of a failed Parse, or fails the test.
func problems(t *testing.T, err error) []string {
	t.Helper()
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse error %v (%T) is not config.Errors", err, err)
	}
	out := make([]string, len(errs))
	for i, p := range errs {
		out[i] = p.Error()
	}
	return out
}

// head is five lines: the bodies in the table start at line 6.
const head = `thing: greenhouse
board: pi4b
connection:
  endpoint: 127.0.0.1
  transport: tcp
`

// rig is a valid device set the mapping cases build on (lines 6–27).
const rig = `devices:
  - id: heater
    driver: relay
    pin: GPIO17
  - id: fan
    driver: fan
    channel: GPIO18
  - id: climate
    driver: bme280
    bus: 1
    address: 0x76
  - id: button
    driver: button
    pin: GPIO27
  - id: mode
    driver: led
    pin: GPIO22
  - id: spare
    driver: relay
    pin: GPIO23
shadows:
  - desired:
`

func TestBrokenConfigs(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"thing with a slash", strings.Replace(head, "thing: greenhouse", "thing: green/house", 1) + "shadows: []\n",
			[]string{`main.yaml:1:8: thing "green/house" contains "/", which MQTT topics reserve (level separator or wildcard); allowed: a-z A-Z 0-9 : _ -`}},
		{"thing with a wildcard", strings.Replace(head, "thing: greenhouse", "thing: \"house#1\"", 1) + "shadows: []\n",
			[]string{`main.yaml:1:8: thing "house#1" contains "#", which MQTT topics reserve (level separator or wildcard); allowed: a-z A-Z 0-9 : _ -`}},
		{"thing missing", strings.Replace(head, "thing: greenhouse\n", "", 1) + "shadows: []\n",
			[]string{`main.yaml:1:1: thing is missing; add thing: NAME (the AWS IoT thing name, 1–128 of a-z A-Z 0-9 : _ -)`}},
		{"misspelt section", head + "devics: []\nshadows: []\n",
			[]string{`main.yaml:6:1: unknown key "devics" in the top level; did you mean "devices"?`}},
		{"endpoint with a scheme", strings.Replace(head, "endpoint: 127.0.0.1", "endpoint: mqtts://example.com", 1) + "shadows: []\n",
			[]string{`main.yaml:4:13: endpoint "mqtts://example.com" has a scheme; write the host only (and port: N), and choose the protocol with transport: tls, alpn, wss or tcp`}},
		{"bare keep_alive", head + "  keep_alive: 60\nshadows: []\n",
			[]string{`main.yaml:6:15: keep_alive: a bare number 60 has no unit; add one: 60s, 60m or 60ms (units: ms, s, m, h)`}},
		{"keep_alive out of range", head + "  keep_alive: 10s\nshadows: []\n",
			[]string{`main.yaml:6:15: keep_alive 10s is out of range; allowed: whole seconds from 30s to 20m (AWS IoT's range)`}},
		{"misspelt transport", strings.Replace(head, "transport: tcp", "transport: tsl", 1) + "shadows: []\n",
			[]string{
				`main.yaml:3:1: connection: cert is missing; transport tls authenticates the device with a certificate and its private key (cert: and key: paths)`,
				`main.yaml:3:1: connection: key is missing; transport tls authenticates the device with a certificate and its private key (cert: and key: paths)`,
				`main.yaml:5:14: transport "tsl" is not allowed; allowed: tls, alpn, wss or tcp; did you mean "tls"?`,
			}},
		{"client id too long", head + "  client_id: " + strings.Repeat("x", 129) + "\nshadows: []\n",
			[]string{`main.yaml:6:14: client_id is 129 bytes long; AWS IoT allows at most 128`}},
		{"backoff and queue", head + "  backoff: {base: 10s, max: 5s, jitter: ful}\n  queue: {drop: latest, drain_rate: fast}\nshadows: []\n",
			[]string{
				`main.yaml:6:29: backoff max 5s is shorter than base 10s; max must be at least base`,
				`main.yaml:6:41: backoff jitter "ful" is not allowed; allowed: none, full or equal; did you mean "full"?`,
				`main.yaml:7:17: queue drop "latest" is not allowed; allowed: oldest or newest`,
				`main.yaml:7:37: queue drain_rate "fast" is not a rate; write messages per time unit, such as 10/s or 30/m (at most 1000/s)`,
			}},
		{"cert with tcp", head + "  cert: /etc/pinshadow/device.pem\nshadows: []\n",
			[]string{`main.yaml:6:3: cert is only used with transport tls or alpn (certificate authentication), not tcp; remove it`}},
		{"unknown driver", head + "devices:\n  - id: heater\n    driver: rely\n    pin: GPIO17\nshadows: []\n",
			[]string{`main.yaml:8:13: device "heater": unknown driver "rely"; allowed: ads1115, aht20, bh1750, bme280, bmp280, button, cpu_temp, ds18b20, fan, ina219, led, mcp23017, pca9685, pir, pwm, relay, servo, sht3x, switch; did you mean "relay"?`}},
		{"misspelt option", head + "devices:\n  - id: heater\n    driver: relay\n    pin: GPIO17\n    activ_low: true\nshadows: []\n",
			[]string{`main.yaml:10:5: unknown key "activ_low" in device "heater" (relay); did you mean "active_low"?`}},
		{"misspelt pin", head + "devices:\n  - id: heater\n    driver: relay\n    pin: GPI17\nshadows: []\n",
			[]string{`main.yaml:9:10: device "heater": unknown pin "GPI17": name pins as GPIO17, pin11 (header) or chip/offset; did you mean "GPIO17"?`}},
		{"bare pin number", head + "devices:\n  - id: heater\n    driver: relay\n    pin: 17\nshadows: []\n",
			[]string{`main.yaml:9:10: device "heater": pin "17": a bare number is ambiguous: write GPIO17 for the GPIO number or pin17 for the header pin`}},
		{"pin used twice", head + "devices:\n  - id: heater\n    driver: relay\n    pin: GPIO17\n  - id: lamp\n    driver: led\n    pin: pin11\nshadows: []\n",
			[]string{`main.yaml:12:10: GPIO17 (pin 11) is already used by device "heater" (main.yaml:9:10); give each device its own pin`}},
		{"i2c address twice", head + "devices:\n  - id: a\n    driver: bme280\n    bus: 1\n  - id: b\n    driver: bmp280\n    bus: i2c-1\n    address: 0x76\nshadows: []\n",
			[]string{`main.yaml:13:14: I2C address 0x76 on bus 1 is already used by device "a" (main.yaml:9:10); two chips on one bus need different addresses: change one chip's address pins, or move it to another bus`}},
		{"pwm on a pin without it", head + "devices:\n  - id: fan\n    driver: fan\n    channel: GPIO17\nshadows: []\n",
			[]string{`main.yaml:9:14: device "fan": pin "GPIO17": no hardware PWM on GPIO17 (pin 11); PWM pins on Raspberry Pi 4 Model B: GPIO12 (pin 32), GPIO18 (pin 12), GPIO13 (pin 33), GPIO19 (pin 35)`}},
		{"pwm channel shared", head + "devices:\n  - id: fan\n    driver: fan\n    channel: GPIO12\n  - id: dimmer\n    driver: pwm\n    channel: GPIO18\nshadows: []\n",
			[]string{`main.yaml:12:14: PWM channel pwmchip0/0 is already used by device "fan" (main.yaml:9:14); each hardware PWM channel drives one output (GPIO12/18 share channel 0, GPIO13/19 channel 1 on Pi 0–4)`}},
		{"reserved pin with i2c on", head + "devices:\n  - id: climate\n    driver: bme280\n    bus: 1\n  - id: heater\n    driver: relay\n    pin: GPIO2\nshadows: []\n",
			[]string{`main.yaml:12:10: device "heater": GPIO2 (pin 3) is reserved while i2c is enabled (pins GPIO2, GPIO3); choose another pin or disable i2c (device "climate" uses I2C bus 1)`}},
		{"unknown bus", head + "devices:\n  - id: climate\n    driver: bme280\n    bus: 3\nshadows: []\n",
			[]string{`main.yaml:9:10: device "climate": unknown i2c bus "3": the header bus is 1 (/dev/i2c-1, GPIO2/3) (known: 1)`}},
		{"driver option check", head + "devices:\n  - id: climate\n    driver: bme280\n    bus: 1\n    address: 0x50\nshadows: []\n",
			[]string{`main.yaml:10:14: device "climate" (bme280): address 0x50 is not a BME280/BMP280 address: use 0x76 (SDO to GND) or 0x77 (SDO high)`}},
		{"option of the wrong type", head + "devices:\n  - id: climate\n    driver: bme280\n    bus: 1\n    oversampling: high\nshadows: []\n",
			[]string{`main.yaml:10:19: device "climate" (bme280) oversampling must be a whole number (0x76 style hex is fine), not string "high"`}},
		{"bare debounce", head + "devices:\n  - id: button\n    driver: button\n    pin: GPIO27\n    debounce: 20\nshadows: []\n",
			[]string{`main.yaml:10:15: device "button" (button) debounce: a bare number 20 has no unit; add one: 20s, 20m or 20ms (units: ms, s, m, h)`}},
		{"device id twice", head + "devices:\n  - id: heater\n    driver: relay\n    pin: GPIO17\n  - id: heater\n    driver: relay\n    pin: GPIO27\nshadows: []\n",
			[]string{`main.yaml:10:9: device id "heater" is already used at main.yaml:7:5; give each device its own id`}},
		{"device without id", head + "devices:\n  - driver: relay\n    pin: GPIO17\nshadows: []\n",
			[]string{`main.yaml:7:5: device: id is missing; add id: NAME (used by the shadow mappings)`}},
		{"unknown device in a mapping", head + rig + "      heater: heatr\n",
			[]string{`main.yaml:28:15: desired key "heater": unknown device "heatr"; allowed: heater, fan, climate, button, mode or spare; did you mean "heater"?`}},
		{"unknown property", head + rig + "      heater: {device: heater, property: onn}\n    reported:\n      temperature: climate.temprature\n",
			[]string{
				`main.yaml:28:42: desired key "heater": device "heater" (relay) has no property "onn"; allowed: on; did you mean "on"?`,
				`main.yaml:30:20: reported key "temperature": device "climate" (bme280) has no property "temprature"; allowed: temperature, pressure or humidity; did you mean "temperature"?`,
			}},
		{"desired to a read-only property", head + rig + "      temperature: {device: climate, property: temperature}\n",
			[]string{`main.yaml:28:48: desired key "temperature" maps to climate.temperature, which is read-only; desired keys need a writable property (writable on "climate": (none)); map it under reported instead`}},
		{"sensor with several properties", head + rig + "    reported:\n      climate: climate\n",
			[]string{`main.yaml:29:16: reported key "climate": device "climate" has 3 readable properties (temperature, pressure or humidity); name one with property: or write climate.PROPERTY`}},
		{"key mapped twice", head + rig + "      heater: heater\n      heater: spare\n",
			[]string{`main.yaml:29:7: desired keys of the classic shadow: key "heater" is set twice (first at line 28); keep one`}},
		{"key mapped twice in two entries", head + rig + "      heater: heater\n  - desired:\n      heater: spare\n",
			[]string{`main.yaml:30:7: desired key "heater" is already mapped at main.yaml:28:7 (to heater.on); map each key once`}},
		{"nested keys overlap", head + rig + "      lights: heater\n      lights.kitchen: spare\n",
			[]string{`main.yaml:29:7: desired key "lights.kitchen" overlaps "lights" (main.yaml:28:7): a key cannot be both a value and an object holding other keys; rename one`}},
		{"one output, two keys", head + rig + "      heater: heater\n  - name: config\n    desired:\n      heat: heater.on\n",
			[]string{`main.yaml:31:7: desired key "config:heat" drives heater.on, which desired key "heater" (main.yaml:28:7) already drives; one desired key per output`}},
		{"boot out of range", head + rig + "      fan: {device: fan, boot: 150}\n",
			[]string{`main.yaml:28:32: desired key "fan": boot 150 is out of range; allowed: 0…100%`}},
		{"boot of the wrong type", head + rig + "      heater: {device: heater, boot: 1}\n",
			[]string{`main.yaml:28:38: desired key "heater" boot must be true or false (the property is a bool), not number 1`}},
		{"failsafe incomplete and out of range", head + rig + "      fan:\n        device: fan\n        failsafe: {value: -5}\n",
			[]string{
				`main.yaml:30:9: desired key "fan": failsafe needs value and after (failsafe: {value: …, after: 10m}); after is missing`,
				`main.yaml:30:27: desired key "fan": failsafe value -5 is out of range; allowed: 0…100%`,
			}},
		{"boot outside the device range after a transform", head + rig + "      fan: {device: fan, scale: 10, boot: 20}\n",
			[]string{`main.yaml:28:43: desired key "fan": boot 20 becomes 200 on fan.speed, which it does not accept (property "speed": 200% is outside 0…100%)`}},
		{"type mismatch", head + rig + "      fan: {device: fan, type: bool}\n",
			[]string{`main.yaml:28:32: desired key "fan": type bool does not match fan.speed, which is a number; allowed: number (or leave type out)`}},
		{"range beyond the property", head + rig + "      fan: {device: fan, range: [0, 150]}\n",
			[]string{`main.yaml:28:33: desired key "fan": range 0…150 goes beyond what fan.speed accepts; allowed: within 0…100%`}},
		{"on_reject misspelt", head + rig + "      heater: {device: heater, on_reject: clear}\n",
			[]string{`main.yaml:28:43: desired key "heater" on_reject "clear" is not allowed; allowed: keep, clear_desired or revert; did you mean "clear_desired"?`}},
		{"interlock with one member", head + rig + "      heater: {device: heater, interlock: climate}\n      fan: {device: fan, interlock: climat}\n      cool: {device: spare, interlock: climate}\n",
			[]string{`main.yaml:29:37: interlock group "climat" has only fan; a group needs two or more desired keys (give the other key interlock: climat too); did you mean "climate"?`}},
		{"invert not a bool", head + rig + "      heater: {device: heater, invert: yes}\n",
			[]string{`main.yaml:28:40: desired key "heater" invert must be true or false, not string "yes"`}},
		{"throttle longer than heartbeat", head + rig + "      heater: heater\n    reported:\n      temperature:\n        device: climate\n        property: temperature\n        filters:\n          - throttle: 10m\n          - heartbeat: 5m\n",
			[]string{`main.yaml:34:23: reported key "temperature": throttle 10m0s is longer than heartbeat 5m0s (line 35), so the heartbeat could never be sent on time; make throttle at most the heartbeat`}},
		{"bare update_interval", head + rig + "      heater: heater\n    reported:\n      temperature: {device: climate, property: temperature, update_interval: 30}\n",
			[]string{`main.yaml:30:78: reported key "temperature" update_interval: a bare number 30 has no unit; add one: 30s, 30m or 30ms (units: ms, s, m, h)`}},
		{"misspelt filter and key", head + rig + "      heater: heater\n    reported:\n      temperature:\n        device: climate\n        property: temperature\n        updat_interval: 30s\n        filters:\n          - medain: 5\n",
			[]string{
				`main.yaml:33:9: unknown key "updat_interval" in reported key "temperature"; did you mean "update_interval"?`,
				`main.yaml:35:13: reported key "temperature": unknown filter "medain"; allowed: offset, multiply, calibrate_linear, clamp, median, moving_average, delta, throttle, heartbeat; did you mean "median"?`,
			}},
		{"number filter on a bool", head + rig + "      heater: heater\n    reported:\n      button:\n        device: button\n        filters:\n          - offset: 1\n",
			[]string{`main.yaml:33:13: reported key "button": filter offset is for number properties; button.pressed is a bool (allowed here: throttle, heartbeat)`}},
		{"publish to a wildcard topic", head + rig + "      heater: heater\n    reported:\n      temperature:\n        device: climate\n        property: temperature\n        publish: {topic: \"greenhouse/+/t\", qos: 2}\n",
			[]string{
				`main.yaml:33:26: reported key "temperature": publish topic "greenhouse/+/t" must be a topic without the wildcards + and #, such as greenhouse/telemetry/temperature`,
				`main.yaml:33:49: reported key "temperature" publish qos 2 is out of range; allowed: 0 to 1`,
			}},
		{"bad calibration", head + rig + "      heater: heater\n    reported:\n      temperature:\n        device: climate\n        property: temperature\n        filters:\n          - calibrate_linear: [\"1 => 2\"]\n",
			[]string{`main.yaml:34:32: reported key "temperature" filter calibrate_linear: point "1 => 2" must read "MEASURED -> TRUE", such as "2.5 -> 100"`}},
		{"flat calibration", head + rig + "      heater: heater\n    reported:\n      temperature:\n        device: climate\n        property: temperature\n        filters:\n          - calibrate_linear: [[0, 5], [10, 5]]\n",
			[]string{`main.yaml:34:31: reported key "temperature" filter calibrate_linear: calibrate_linear points map every value to 5: give points whose true values differ`}},
		{"one calibration point", head + rig + "      fan: {device: fan, calibrate_linear: [\"1 -> 2\"]}\n",
			[]string{`main.yaml:28:44: desired key "fan" calibrate_linear: calibrate_linear needs at least 2 points, got 1`}},
		{"problems next to an unknown device", head + rig + "      heater: {device: heatr, on_reject: clear, min_toggle_interval: 5}\n    reported:\n      t: {device: clim, update_interval: 1, publish: {topic: a/#}}\n",
			[]string{
				`main.yaml:28:24: desired key "heater": unknown device "heatr"; allowed: heater, fan, climate, button, mode or spare; did you mean "heater"?`,
				`main.yaml:28:42: desired key "heater" on_reject "clear" is not allowed; allowed: keep, clear_desired or revert; did you mean "clear_desired"?`,
				`main.yaml:28:70: desired key "heater" min_toggle_interval: a bare number 5 has no unit; add one: 5s, 5m or 5ms (units: ms, s, m, h)`,
				`main.yaml:30:19: reported key "t": unknown device "clim"; allowed: heater, fan, climate, button, mode or spare; did you mean "climate"?`,
				`main.yaml:30:42: reported key "t" update_interval: a bare number 1 has no unit; add one: 1s, 1m or 1ms (units: ms, s, m, h)`,
				`main.yaml:30:62: reported key "t": publish topic "a/#" must be a topic without the wildcards + and #, such as greenhouse/telemetry/temperature`,
			}},
		{"desired and reported key on different devices", head + rig + "      heater: heater\n    reported:\n      heater: button\n  - name: n\n    reported:\n      fan: climate.pressure\n  - name: n\n    desired:\n      fan: fan\n",
			[]string{
				`main.yaml:30:7: reported key "heater" is also the desired key at main.yaml:28:7, mapped to heater.on; the agent reports a desired key's applied value under the same name: rename this reported key`,
				`main.yaml:36:7: desired key "fan" is also the reported key at main.yaml:33:7, mapped to climate.pressure; the agent reports a desired key's applied value under the same name: rename one of them`,
			}},
		{"thing name too long", strings.Replace(head, "thing: greenhouse", "thing: "+strings.Repeat("g", 129), 1) + "shadows: []\n",
			[]string{`main.yaml:1:8: thing name is 129 characters long; AWS IoT allows at most 128`}},
		{"required option missing", head + "devices:\n  - id: heater\n    driver: relay\nshadows: []\n",
			[]string{`main.yaml:8:13: device "heater" (relay): pin is required (a line name such as GPIO17 or gpiochip0/17)`}},
		{"unset environment variable", strings.Replace(head, "endpoint: 127.0.0.1", "endpoint: ${ENDPOINT}", 1) + "shadows: []\n",
			[]string{`main.yaml:4:13: environment variable ENDPOINT is not set; set it or give a default as ${ENDPOINT:-value}`}},
		{"yaml syntax", head + "devices:\n  - id: x\n   driver: relay\n",
			[]string{`main.yaml:6: YAML syntax error at or below this line: did not find expected '-' indicator; check the indentation and quoting`}},
		{"board alias", strings.Replace(head, "board: pi4b", "board: pi4", 1) + "shadows: []\n",
			nil}, // pi4 is an alias of pi4b
		{"misspelt board", strings.Replace(head, "board: pi4b", "board: pi4c", 1) + "shadows: []\n",
			[]string{`main.yaml:2:8: unknown board "pi4c"; allowed: auto, zero, zero2w, pi3b, pi4b, pi400, cm4, pi5, generic; did you mean "pi4b"?`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, files{"main.yaml": tc.yaml}, nil)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want no problems, got\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want problems, Parse succeeded")
			}
			got := problems(t, err)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestSpecFromSimConfig(t *testing.T) {
	cfg, err := config.Load("../configs/sim.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Thing != "sim-greenhouse" || cfg.Profile.Name != "pi4b" || cfg.StateDir != "./sim-state" {
		t.Errorf("thing %q, board %q, state_dir %q", cfg.Thing, cfg.Profile.Name, cfg.StateDir)
	}
	c := cfg.Connection
	if c.Endpoint != "127.0.0.1:1883" || c.Transport != iot.TransportTCP || c.ClientID != "sim-greenhouse" ||
		c.KeepAlive != 30*time.Second || c.Queue.Drop != iot.DropOldest || c.Queue.DrainInterval != 20*time.Millisecond ||
		c.Backoff.Base != 100*time.Millisecond || c.Backoff.Jitter != iot.JitterFull {
		t.Errorf("connection %+v", c)
	}
	if ic := c.IOT(nil); ic.Endpoint != c.Endpoint || ic.ClientID != "sim-greenhouse" || ic.Credentials != nil {
		t.Errorf("IOT() = %+v", ic)
	}
	// What config accepts, the iot client accepts.
	client, err := iot.New(c.IOT(nil))
	if err != nil {
		t.Fatalf("iot.New(sim connection): %v", err)
	}
	if err := client.Close(context.Background()); err != nil {
		t.Error(err)
	}
	var heater, fan *config.Device
	for i := range cfg.Devices {
		switch cfg.Devices[i].ID {
		case "heater":
			heater = &cfg.Devices[i]
		case "fan":
			fan = &cfg.Devices[i]
		}
	}
	if heater == nil || fan == nil {
		t.Fatalf("devices %+v", cfg.Devices)
	}
	if got := heater.Wiring.String(); got != "GPIO17 (pin 11)" {
		t.Errorf("heater wiring %q", got)
	}
	if got := fan.Wiring.String(); got != "PWM pwmchip0/0 on GPIO18 (pin 12)" {
		t.Errorf("fan wiring %q", got)
	}
	// The options hold the HAL's names, ready for Registry.Open.
	if got := heater.Options; !strings.Contains(strings.ReplaceAll(fmtAny(got), " ", ""), "pinctrl-bcm2711/17") {
		t.Errorf("heater options %s, want the HAL line name", fmtAny(got))
	}

	s := cfg.Spec()
	if len(s.Desired) != 3 || len(s.Reported) != 4 {
		t.Fatalf("spec: %d desired, %d reported", len(s.Desired), len(s.Reported))
	}
	h := s.Desired[0]
	want := reconcile.DesiredKey{Key: reconcile.KeyPath{Path: "heater"}, Device: "heater", Property: "on", Type: devices.TypeBool,
		Safety:   reconcile.Safety{Boot: devices.Bool(false), Failsafe: devices.Bool(false), FailsafeAfter: 10 * time.Minute, MinToggleInterval: 5 * time.Second},
		OnReject: reconcile.Revert}
	if fmtAny(h) != fmtAny(want) {
		t.Errorf("heater key\n%s\nwant\n%s", fmtAny(h), fmtAny(want))
	}
	if f := s.Desired[1]; f.Range == nil || *f.Range != (devices.Range{Min: 0, Max: 100}) || f.OnReject != reconcile.ClearDesired || f.Unit != "%" {
		t.Errorf("fan key %+v", f)
	}
	if len(s.Interlocks) != 1 || s.Interlocks[0].Name != "climate_control" || len(s.Interlocks[0].Keys) != 2 {
		t.Errorf("interlocks %+v", s.Interlocks)
	}
	temp := s.Reported[0]
	if temp.Interval != 2*time.Second || temp.Round != 1 || len(temp.Filters) != 3 || temp.Filters[0].Median != 3 ||
		*temp.Filters[1].Delta != 0.1 || temp.Filters[2].Heartbeat != time.Minute || temp.Publish == nil || temp.Publish.Interval != 10*time.Second {
		t.Errorf("temperature key %s", fmtAny(temp))
	}
	soil := s.Reported[3]
	if cal := soil.Filters[0].Calibrate; len(cal) != 2 || cal[0] != (reconcile.CalPoint{From: 1.2, To: 100}) {
		t.Errorf("soil calibration %+v (want sorted by measured value)", cal)
	}
	if b := s.Reported[2]; b.Round != -1 || b.Property != "pressed" {
		t.Errorf("button key %+v", b)
	}
	// Spec returns copies.
	s.Desired[0].Device = "x"
	if cfg.Spec().Desired[0].Device != "heater" {
		t.Error("Spec shares its slices with the Config")
	}
}

func fmtAny(v any) string { return strings.TrimSpace(fmtSprint(v)) }

func TestEnvSubstitution(t *testing.T) {
	yaml := `thing: ${THING}
board: pi4b
connection:
  endpoint: ${HOST:-localhost}
  port: ${PORT}
  transport: tcp
  client_id: "literal-$${X}-${SUFFIX:-none}"
shadows: []
`
	cfg, err := parse(t, files{"main.yaml": yaml}, map[string]string{"THING": "pi-7", "PORT": "1884"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Thing != "pi-7" || cfg.Connection.Endpoint != "localhost:1884" || cfg.Connection.ClientID != "literal-${X}-none" {
		t.Errorf("thing %q endpoint %q client_id %q", cfg.Thing, cfg.Connection.Endpoint, cfg.Connection.ClientID)
	}
	_, err = parse(t, files{"main.yaml": yaml}, map[string]string{"PORT": "x"})
	want := []string{
		`main.yaml:1:8: environment variable THING is not set; set it or give a default as ${THING:-value}`,
		`main.yaml:5:9: port must be a whole number from 1 to 65535, not string "x"`,
	}
	if got := problems(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestInclude(t *testing.T) {
	fsys := files{
		"main.yaml": head + "include: [hw/devices.yaml, mappings.yaml, more-mappings.yaml]\n",
		"hw/devices.yaml": `devices:
  - id: heater
    driver: relay
    pin: GPIO17
include: more.yaml
`,
		"hw/more.yaml": `devices:
  - id: fan
    driver: fan
    channel: GPIO18
`,
		"mappings.yaml": `shadows:
  - desired:
      heater: heater
`,
		"more-mappings.yaml": `shadows:
  - desired:
      fan: fan
`,
	}
	cfg, err := parse(t, fsys, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Files, ","); got != "main.yaml,hw/devices.yaml,hw/more.yaml,mappings.yaml,more-mappings.yaml" {
		t.Errorf("files %s", got)
	}
	if len(cfg.Devices) != 2 || len(cfg.Spec().Desired) != 2 {
		t.Errorf("devices %d, desired %d", len(cfg.Devices), len(cfg.Spec().Desired))
	}
	// The classic shadow listed in two files is one shadow with both keys.
	if got := fmtAny(cfg.Shadows); got != "[{Name: Desired:[heater fan] Reported:[]}]" {
		t.Errorf("shadows %s", got)
	}

	// Problems in included files carry their names, sorted in reading order.
	fsys["hw/more.yaml"] = "devices:\n  - id: fan\n    driver: fan\n    channel: GPIO17\n"
	fsys["mappings.yaml"] = "shadows:\n  - desired:\n      heater: heatr\nthing: other\n"
	_, err = parse(t, fsys, nil)
	want := []string{
		`hw/more.yaml:4:14: device "fan": pin "GPIO17": no hardware PWM on GPIO17 (pin 11); PWM pins on Raspberry Pi 4 Model B: GPIO12 (pin 32), GPIO18 (pin 12), GPIO13 (pin 33), GPIO19 (pin 35)`,
		`mappings.yaml:3:15: desired key "heater": unknown device "heatr"; allowed: heater or fan; did you mean "heater"?`,
		`mappings.yaml:4:1: thing is already set at main.yaml:1:1; set it in one file only`,
	}
	if got := problems(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestIncludeCycleAndMissing(t *testing.T) {
	fsys := files{
		"main.yaml":  head + "shadows: []\ninclude:\n  - a.yaml\n  - missing.yaml\n",
		"a.yaml":     "include: sub/b.yaml\n",
		"sub/b.yaml": "include: ../main.yaml\n",
	}
	_, err := parse(t, fsys, nil)
	want := []string{
		`main.yaml:9:5: cannot include missing.yaml: no such file; include paths are relative to the including file`,
		`sub/b.yaml:1:10: include cycle: main.yaml → a.yaml → sub/b.yaml → main.yaml; remove one of these includes`,
	}
	if got := problems(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestUnreadableTopFile(t *testing.T) {
	_, err := parse(t, files{}, nil)
	var errs config.Errors
	if !errors.Is(err, config.ErrRead) || !errors.Is(err, fs.ErrNotExist) || errors.As(err, &errs) {
		t.Errorf("err = %v, want ErrRead wrapping fs.ErrNotExist", err)
	}
}
