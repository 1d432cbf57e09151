package config_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/config"
)

func TestJobsSection(t *testing.T) {
	cfg, err := parse(t, files{"main.yaml": head + `shadows: []
jobs:
  step_timeout: 15m
  handlers: {dir: /etc/pinshadow/handlers, user: pinshadow, timeout: 1m, max_timeout: 10m}
  downloads: {dir: /var/lib/pinshadow/downloads, max_size: 10MiB, allow_http: true}
  apply_config: {verify_timeout: 2m}
  reboot: {command: [sudo, /sbin/reboot], timeout: 5m}
`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Jobs{Enabled: true, StepTimeout: 15 * time.Minute,
		Handlers:  config.JobHandlers{Dir: "/etc/pinshadow/handlers", User: "pinshadow", Timeout: time.Minute, MaxTimeout: 10 * time.Minute},
		Downloads: config.JobDownloads{Dir: "/var/lib/pinshadow/downloads", MaxSize: 10 << 20, AllowHTTP: true}}
	got := *cfg.Jobs
	got.Pos = config.Position{}
	if !got.ApplyConfig.Enabled || !got.Reboot.Enabled || got.ApplyConfig.VerifyTimeout != 2*time.Minute || strings.Join(got.Reboot.Command, " ") != "sudo /sbin/reboot" || got.Reboot.Timeout != 5*time.Minute {
		t.Errorf("apply_config/reboot: %+v %+v", got.ApplyConfig, got.Reboot)
	}
	got.ApplyConfig, got.Reboot = config.JobApplyConfig{}, config.JobReboot{}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("jobs\n got %+v\nwant %+v", got, want)
	}
	if s := cfg.Jobs.String(); !strings.Contains(s, "set-desired, pulse, run-handler, download-file, apply-config, reboot; step timeout 15m0s") {
		t.Errorf("summary %q", s)
	}

	// Defaults, and no section at all.
	cfg, err = parse(t, files{"main.yaml": head + "shadows: []\njobs: {}\n"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if j := cfg.Jobs; !j.Enabled || j.StepTimeout != config.DefaultStepTimeout || j.Handlers.Dir != "" || j.Downloads.MaxSize != config.DefaultMaxDownload {
		t.Errorf("defaults %+v", j)
	}
	// The two types that hand over the whole device are off unless named.
	if j := cfg.Jobs; j.ApplyConfig.Enabled || j.Reboot.Enabled || j.String() != "jobs: set-desired, pulse; step timeout 10m0s" {
		t.Errorf("jobs: {} enables %q (apply_config %v, reboot %v); want only set-desired and pulse", j.String(), j.ApplyConfig.Enabled, j.Reboot.Enabled)
	}
	cfg, err = parse(t, files{"main.yaml": head + "shadows: []\n"}, nil)
	if err != nil || cfg.Jobs != nil || cfg.Jobs.String() != "jobs: off" {
		t.Errorf("no section: %v %+v", err, cfg.Jobs)
	}
}

func TestJobsSectionProblems(t *testing.T) {
	_, err := parse(t, files{"main.yaml": head + `jobs:
  step_timout: 5m
  step_timeout: 30s
  handlers: {dir: handlers, user: "Root Admin", timeout: 10m, max_timeout: 1m}
  downloads: {dir: /srv/x, max_size: 10 parsecs, allow_http: maybe}
`}, nil)
	got := strings.Join(problems(t, err), "\n")
	for _, want := range []string{
		`main.yaml:6:1: jobs handlers max_timeout 1m0s is shorter than timeout 10m0s`,
		`main.yaml:7:3: unknown key "step_timout" in jobs`, `did you mean "step_timeout"?`,
		`main.yaml:8:17: jobs step_timeout 30s is out of range; AWS IoT Jobs allows 1m to 168h`,
		`main.yaml:9:19: jobs handlers dir "handlers" must be an absolute directory path`,
		`main.yaml:9:35: jobs handlers user "Root Admin" is not a user name`,
		`main.yaml:10:38: jobs downloads max_size "10 parsecs": want a size such as 10MiB`,
		`main.yaml:10:62: jobs downloads allow_http must be true or false`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	_, err = parse(t, files{"main.yaml": head + "shadows: []\njobs: {handlers: {dir: /srv/j}, downloads: {dir: /srv/j/}}\n"}, nil)
	if got := strings.Join(problems(t, err), "\n"); !strings.Contains(got, "a download must never become an allow-listed handler") {
		t.Errorf("same dir for handlers and downloads: %s", got)
	}
}
