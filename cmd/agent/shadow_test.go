package main

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/pinshadow/pinshadow/localcloud"
	"github.com/pinshadow/pinshadow/localcloud/devcerts"
)

// startShadowCloud runs a local cloud for 'agent shadow' tests and returns
// its plain and mutual-TLS endpoints.
func startShadowCloud(t *testing.T) (plain, mtls, pki string) {
	t.Helper()
	pki = t.TempDir()
	if err := devcerts.WriteSet(pki, "pi", false); err != nil {
		t.Fatal(err)
	}
	o := localcloud.DefaultOptions()
	o.Listen, o.TLSListen = "127.0.0.1:0", "127.0.0.1:0"
	o.TLSCertFile = filepath.Join(pki, devcerts.ServerCertFile)
	o.TLSKeyFile = filepath.Join(pki, devcerts.ServerKeyFile)
	o.ClientCAFile = filepath.Join(pki, devcerts.CACertFile)
	s, err := localcloud.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, ep := range s.Endpoints() {
		switch ep.Name {
		case "mqtt":
			plain = ep.Addr.String()
		case "mqtts":
			mtls = ep.Addr.String()
		}
	}
	return plain, mtls, pki
}

func decodeOut(t *testing.T, out string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("stdout is not a JSON document: %v\n%s", err, out)
	}
	return m
}

func TestShadowCommandAgainstLocalCloud(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	addr, mtlsAddr, pki := startShadowCloud(t)
	base := []string{"--endpoint", addr, "--thing", "pi", "--timeout", "5s"}
	sh := func(op string, extra ...string) (int, string, string) {
		return runAgentCmd(t, append(append([]string{"shadow", op}, base...), extra...)...)
	}

	code, out, errOut := sh("update", "--desired", "led=on", "--desired", "fan.speed=3", "--desired", "cfg={\"a\":[1,2]}",
		"--reported", "temp=21.5", "--reported", "ok=true", "--reported", `label="42"`)
	if code != 0 {
		t.Fatalf("update: exit %d, stderr %q", code, errOut)
	}
	acc := decodeOut(t, out)
	if acc["version"] != float64(1) || !strings.Contains(out, "\n  ") {
		t.Errorf("update printed %s, want the pretty accepted document at version 1", out)
	}
	code, out, errOut = sh("get")
	if code != 0 {
		t.Fatalf("get: exit %d, stderr %q", code, errOut)
	}
	state := decodeOut(t, out)["state"].(map[string]any)
	wantDesired := map[string]any{"led": "on", "fan": map[string]any{"speed": float64(3)}, "cfg": map[string]any{"a": []any{float64(1), float64(2)}}}
	wantReported := map[string]any{"temp": 21.5, "ok": true, "label": "42"}
	if !reflect.DeepEqual(state["desired"], wantDesired) || !reflect.DeepEqual(state["reported"], wantReported) {
		t.Errorf("get state = %v\nwant desired %v reported %v", state, wantDesired, wantReported)
	}

	// A named shadow, over mutual TLS, with a whole request document.
	code, out, errOut = runAgentCmd(t, "shadow", "update", "--endpoint", mtlsAddr, "--thing", "pi", "--name", "cfg",
		"--cert", filepath.Join(pki, devcerts.DeviceCertFile), "--key", filepath.Join(pki, devcerts.DeviceKeyFile),
		"--ca", filepath.Join(pki, devcerts.CACertFile), "--timeout", "5s", "--client-id", "pi",
		"--json", `{"state":{"desired":{"rate":5}},"clientToken":"mine"}`)
	if code != 0 {
		t.Fatalf("named update over mTLS: exit %d, stderr %q", code, errOut)
	}
	if d := decodeOut(t, out); d["version"] != float64(1) || d["clientToken"] == "mine" {
		t.Errorf("named update printed %s (the token must be a fresh one)", out)
	}

	// A rejected request: exit 3 with AWS's code and message.
	code, _, errOut = sh("update", "--desired", "led=off", "--version", "9")
	if code != exitRejected || !strings.Contains(errOut, "409") || !strings.Contains(errOut, "Version conflict") {
		t.Errorf("conflicting update: exit %d, stderr %q; want %d with 409 Version conflict", code, errOut, exitRejected)
	}
	if code, out, errOut = sh("delete"); code != 0 || decodeOut(t, out)["version"] != float64(1) {
		t.Fatalf("delete: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = sh("get")
	if code != exitRejected || out != "" || !strings.Contains(errOut, "404") || !strings.Contains(errOut, "No shadow exists with name: 'pi'") {
		t.Errorf("get after delete: exit %d, stdout %q, stderr %q; want %d and the 404 message", code, out, errOut, exitRejected)
	}
}

func TestShadowCommandUnreachable(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	code, out, errOut := runAgentCmd(t, "shadow", "get", "--endpoint", addr, "--thing", "pi", "--timeout", "300ms")
	if code != exitUnreachable || out != "" || !strings.Contains(errOut, addr) {
		t.Errorf("unreachable endpoint: exit %d, stdout %q, stderr %q; want %d naming the endpoint", code, out, errOut, exitUnreachable)
	}
}

func TestShadowCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{"shadow"},
		{"shadow", "list", "--endpoint", "h:1", "--thing", "t"},
		{"shadow", "get", "--thing", "t"},
		{"shadow", "get", "--endpoint", "h:1"},
		{"shadow", "get", "--endpoint", "h:1", "--thing", "bad/name"},
		{"shadow", "get", "--endpoint", "h:1", "--thing", "t", "--desired", "a=1"},
		{"shadow", "update", "--endpoint", "h:1", "--thing", "t"},
		{"shadow", "update", "--endpoint", "h:1", "--thing", "t", "--desired", "novalue"},
		{"shadow", "update", "--endpoint", "h:1", "--thing", "t", "--desired", "a..b=1"},
		{"shadow", "update", "--endpoint", "h:1", "--thing", "t", "--desired", "a=1", "--json", "{}"},
		{"shadow", "get", "--endpoint", "h:1", "--thing", "t", "--cert", "c.pem"},
		{"shadow", "get", "--endpoint", "h:1", "--thing", "t", "extra"},
	} {
		code, _, errOut := runAgentCmd(t, args...)
		if code != 2 || !strings.Contains(errOut, "agent shadow -h") {
			t.Errorf("%q: exit %d, stderr %q; want 2 with a usage hint", args, code, errOut)
		}
	}
}

func TestKeyValueFlag(t *testing.T) {
	var kv keyValues
	for _, s := range []string{"s=on", "n=3", "f=-1.5e2", "b=false", "z=null", "o={\"x\":1}", "arr=[1,\"a\"]", "q=\"7\"", "sp=two words", "a.b.c=1", "a.b.d=x", "eq=a=b"} {
		if err := kv.Set(s); err != nil {
			t.Fatalf("Set(%q): %v", s, err)
		}
	}
	want := `{"a":{"b":{"c":1,"d":"x"}},"arr":[1,"a"],"b":false,"eq":"a=b","f":-1.5e2,"n":3,"o":{"x":1},"q":"7","s":"on","sp":"two words","z":null}`
	if got := kv.String(); got != want {
		t.Errorf("collected %s\nwant      %s", got, want)
	}
}
