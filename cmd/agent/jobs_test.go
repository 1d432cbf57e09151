package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/jobs"
)

func TestJobsCommandAgainstLocalCloud(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	addr, _, _ := startShadowCloud(t)
	jb := func(op string, extra ...string) (int, string, string) {
		return runAgentCmd(t, append([]string{"jobs", op, "--endpoint", addr, "--timeout", "5s"}, extra...)...)
	}
	docFile := filepath.Join(t.TempDir(), "doc.json")
	if err := os.WriteFile(docFile, []byte(`{"operation":"reboot"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := jb("create", "--job-id", "j1", "--thing", "pi", "--thing", "pi2", "--document", docFile, "--in-progress-timeout", "30m", "--description", "reboot all")
	if code != 0 {
		t.Fatalf("create: exit %d, stderr %q", code, errOut)
	}
	if j := decodeOut(t, out); j["jobId"] != "j1" || j["status"] != "IN_PROGRESS" || j["inProgressTimeoutInMinutes"] != 30.0 || len(j["targets"].([]any)) != 2 {
		t.Errorf("create printed %s", out)
	}
	if code, _, errOut = jb("create", "--job-id", "j2", "--thing", "pi", "--document", `{"operation":"second"}`); code != 0 {
		t.Fatalf("create inline: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = jb("create", "--job-id", "j1", "--thing", "pi", "--document", `{}`)
	if code != exitRejected || !strings.Contains(errOut, "ResourceAlreadyExists") || !strings.Contains(errOut, "j1") {
		t.Errorf("duplicate create: exit %d, stderr %q", code, errOut)
	}

	// The device starts j1 (through the jobs client, as an agent would).
	ic, err := iot.New(iot.Config{Endpoint: addr, Transport: iot.TransportTCP, ClientID: "pi", Queue: iot.QueueConfig{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ic.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	dev, err := jobs.New(ctx, jobs.IOT(ic), "pi", jobs.Options{NoResync: true})
	if err != nil {
		t.Fatal(err)
	}
	if x, err := dev.StartNext(ctx, jobs.StartNextOptions{}); err != nil || x.JobID != "j1" {
		t.Fatalf("start-next: %+v, %v", x, err)
	}
	dev.Close(ctx)
	ic.Close(ctx)

	code, out, errOut = jb("list")
	if code != 0 {
		t.Fatalf("list: exit %d, stderr %q", code, errOut)
	}
	if l := decodeOut(t, out)["jobs"].([]any); len(l) != 2 || l[0].(map[string]any)["jobId"] != "j1" {
		t.Errorf("list printed %s", out)
	}
	code, out, _ = jb("list", "--thing", "pi", "--status", "QUEUED")
	if l := decodeOut(t, out)["executions"].([]any); code != 0 || len(l) != 1 || l[0].(map[string]any)["jobId"] != "j2" {
		t.Errorf("list --thing pi --status QUEUED: exit %d, %s", code, out)
	}
	code, out, _ = jb("describe", "--job-id", "j1")
	if j := decodeOut(t, out); code != 0 || j["document"].(map[string]any)["operation"] != "reboot" || len(j["executions"].([]any)) != 2 {
		t.Errorf("describe j1: exit %d, %s", code, out)
	}
	code, out, _ = jb("describe", "--job-id", "j1", "--thing", "pi")
	if x := decodeOut(t, out); code != 0 || x["status"] != "IN_PROGRESS" || x["thingName"] != "pi" {
		t.Errorf("describe j1 --thing pi: exit %d, %s", code, out)
	}
	code, _, errOut = jb("describe", "--job-id", "nope")
	if code != exitRejected || !strings.Contains(errOut, "ResourceNotFound") || !strings.Contains(errOut, "nope") {
		t.Errorf("describe unknown: exit %d, stderr %q", code, errOut)
	}

	// Cancelling the running execution needs --force.
	code, _, errOut = jb("cancel", "--job-id", "j1", "--thing", "pi")
	if code != exitRejected || !strings.Contains(errOut, "force") {
		t.Errorf("cancel IN_PROGRESS without --force: exit %d, stderr %q", code, errOut)
	}
	code, out, errOut = jb("cancel", "--job-id", "j1", "--force", "--comment", "changed my mind")
	if j := decodeOut(t, out); code != 0 || j["status"] != "CANCELED" || j["forceCanceled"] != true || j["executionCounts"].(map[string]any)["CANCELED"] != 2.0 {
		t.Errorf("cancel --force: exit %d, %s, stderr %q", code, out, errOut)
	}
	code, out, _ = jb("remove", "--job-id", "j2", "--thing", "pi")
	if x := decodeOut(t, out); code != 0 || x["status"] != "REMOVED" {
		t.Errorf("remove: exit %d, %s", code, out)
	}
}

func TestJobsCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{"jobs"},
		{"jobs", "frobnicate", "--endpoint", "x:1"},
		{"jobs", "create", "--endpoint", "x:1", "--job-id", "j", "--thing", "t"},     // no document
		{"jobs", "create", "--endpoint", "x:1", "--job-id", "j", "--document", "{}"}, // no thing
		{"jobs", "create", "--endpoint", "x:1", "--job-id", "j", "--thing", "t", "--document", "[1]"},
		{"jobs", "create", "--endpoint", "x:1", "--job-id", "j", "--thing", "t", "--document", "/no/such/file"},
		{"jobs", "create", "--endpoint", "x:1", "--job-id", "j", "--thing", "t", "--document", "{}", "--in-progress-timeout", "90s"},
		{"jobs", "describe", "--endpoint", "x:1"},        // no job id
		{"jobs", "list", "--endpoint", "x:1", "--force"}, // not a list flag
		{"jobs", "cancel", "--endpoint", "x:1", "--job-id", "j", "--thing", "a", "--thing", "b"},
		{"jobs", "remove", "--endpoint", "x:1", "--job-id", "j"}, // no thing
		{"jobs", "list"}, // no endpoint
	} {
		if code, _, errOut := runAgentCmd(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, errOut)
		}
	}
}

func TestJobsCommandUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	code, _, errOut := runAgentCmd(t, "jobs", "list", "--endpoint", addr, "--timeout", "300ms")
	if code != exitUnreachable || !strings.Contains(errOut, addr) {
		t.Errorf("closed port: exit %d, stderr %q", code, errOut)
	}
}
