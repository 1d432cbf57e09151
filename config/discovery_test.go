package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/config"
)

// awsHead is an AWS IoT connection over mutual TLS (lines 1–7).
const awsHead = `thing: greenhouse
board: pi4b
connection:
  endpoint: abc123-ats.iot.eu-west-1.amazonaws.com
  cert: /etc/pinshadow/device.crt
  key: /etc/pinshadow/device.key
  ca: /etc/pinshadow/AmazonRootCA1.pem
`

func TestDiscoveryConfig(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want config.Discovery
	}{
		{"absent is off", awsHead, config.Discovery{}},
		{"defaults derived from the endpoint", awsHead + "  discovery: {}\n", config.Discovery{
			Enabled: true, Endpoint: "greengrass-ats.iot.eu-west-1.amazonaws.com:8443", CAFile: "/etc/pinshadow/AmazonRootCA1.pem",
			Timeout: 10 * time.Second, Attempts: 3, ConnectTimeout: 10 * time.Second, Fallback: true, RediscoverInterval: time.Minute}},
		{"everything set", awsHead + "  discovery:\n    endpoint: gg.example\n    port: 443\n    ca: /ca.pem\n    timeout: 5s\n    attempts: 10\n    connect_timeout: 2s\n    fallback: false\n    rediscover_interval: 5m\n",
			config.Discovery{Enabled: true, Endpoint: "gg.example:443", CAFile: "/ca.pem", Timeout: 5 * time.Second, Attempts: 10, ConnectTimeout: 2 * time.Second, RediscoverInterval: 5 * time.Minute}},
		{"endpoint with port", awsHead + "  discovery: {endpoint: \"127.0.0.1:9443\"}\n", config.Discovery{
			Enabled: true, Endpoint: "127.0.0.1:9443", CAFile: "/etc/pinshadow/AmazonRootCA1.pem",
			Timeout: 10 * time.Second, Attempts: 3, ConnectTimeout: 10 * time.Second, Fallback: true, RediscoverInterval: time.Minute}},
		{"disabled", awsHead + "  discovery: {enabled: false}\n", config.Discovery{
			CAFile: "/etc/pinshadow/AmazonRootCA1.pem", Timeout: 10 * time.Second, Attempts: 3, ConnectTimeout: 10 * time.Second, Fallback: true, RediscoverInterval: time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parse(t, files{"main.yaml": tt.yaml + "shadows: []\n"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Connection.Discovery != tt.want {
				t.Errorf("discovery %+v, want %+v", cfg.Connection.Discovery, tt.want)
			}
		})
	}
}

func TestDiscoveryConfigProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"misspelt key", awsHead + "  discovery: {atempts: 3}\n",
			[]string{`main.yaml:8:15: unknown key "atempts" in discovery; did you mean "attempts"?`}},
		{"out of range", awsHead + "  discovery: {attempts: 20, timeout: 1h, rediscover_interval: 10ms}\n",
			[]string{
				`main.yaml:8:25: discovery attempts 20 is out of range; allowed: 1 to 10`,
				`main.yaml:8:38: discovery timeout 1h0m0s is out of range; allowed: 100ms to 5m`,
				`main.yaml:8:63: discovery rediscover_interval 10ms is out of range; allowed: 1s to 24h (AWS throttles the discovery API: keep it at a minute or more in production)`,
			}},
		{"no region to derive from", head + "  discovery: {}\n",
			[]string{
				`main.yaml:6:3: discovery: endpoint is missing and cannot be derived from connection endpoint "127.0.0.1" (not an AWS IoT endpoint); add endpoint: greengrass-ats.iot.REGION.amazonaws.com`,
				`main.yaml:6:3: discovery needs the device certificate (transport tls or alpn): the discovery API and the Greengrass core authenticate the device by mutual TLS, not tcp`,
			}},
		{"scheme", awsHead + "  discovery: {endpoint: \"https://gg\"}\n",
			[]string{`main.yaml:8:25: discovery endpoint "https://gg": write the host only (and port: N), such as greengrass-ats.iot.eu-west-1.amazonaws.com`}},
		{"two ports", awsHead + "  discovery: {endpoint: \"gg:1\", port: 2}\n",
			[]string{`main.yaml:8:25: discovery endpoint "gg:1" already has a port and port: is set too; keep one`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, files{"main.yaml": tt.yaml + "shadows: []\n"}, nil)
			got := problems(t, err)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDiscoveryDescribe(t *testing.T) {
	d := config.Discovery{Enabled: true, Endpoint: "gg:8443", Attempts: 3, Timeout: 10 * time.Second, Fallback: true, RediscoverInterval: time.Minute}
	if got, want := d.Describe("iot:8883"), "Greengrass discovery at gg:8443 (3 tries, 10s each), then the first core address that answers; asked again when none does (at most every 1m0s); fallback: iot:8883"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	d.Fallback = false
	if got := d.Describe("iot:8883"); !strings.HasSuffix(got, "; no fallback") {
		t.Errorf("Describe = %q", got)
	}
	if got := (config.Discovery{}).Describe("x"); got != "" {
		t.Errorf("disabled: %q", got)
	}
}
