package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/shadowsync"
)

// Exit codes of 'agent shadow' beyond 0 (ok), 1 (other failure) and 2
// (usage).
const (
	// exitRejected: the shadow service rejected the request; stderr carries
	// AWS's code and message.
	exitRejected = 3
	// exitUnreachable: no connection to the endpoint, or no response in
	// time.
	exitUnreachable = 4
)

// keyValues collects repeated k=v flags into one state object.
type keyValues struct{ m map[string]any }

func (kv *keyValues) String() string {
	if kv == nil || kv.m == nil {
		return ""
	}
	b, _ := json.Marshal(kv.m)
	return string(b)
}

// Set parses "k=v": v as JSON when it parses (numbers, true/false, null,
// objects, arrays, "quoted strings"), else as a plain string; dots in k
// make nested keys (a.b=1 → {"a":{"b":1}}).
func (kv *keyValues) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want key=value, e.g. led=on or fan.speed=3", s)
	}
	path := strings.Split(k, ".")
	for _, p := range path {
		if p == "" {
			return fmt.Errorf("%q: empty key segment in %q", s, k)
		}
	}
	var val any = v
	dec := json.NewDecoder(strings.NewReader(v))
	dec.UseNumber()
	var parsed any
	if err := dec.Decode(&parsed); err == nil && !dec.More() {
		if _, err := dec.Token(); err != nil { // nothing after the value
			val = parsed
		}
	}
	if kv.m == nil {
		kv.m = map[string]any{}
	}
	m := kv.m
	for _, p := range path[:len(path)-1] {
		next, isObj := m[p].(map[string]any)
		if !isObj {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = val
	return nil
}

// runShadow is 'agent shadow get|update|delete': the cloud side of a
// shadow, for people and scripts.
func runShadow(ctx context.Context, e *env, args []string) error {
	const synopsis = "get|update|delete --endpoint HOST:PORT --thing T [--name N] [--desired k=v …] [--reported k=v …] [--json DOC] [--version N] [--cert F --key F --ca F] [--client-id ID] [--timeout D]"
	fs := newFlags(e, "shadow", synopsis)
	cf := addCloudFlags(fs, "agent-shadow")
	thing := fs.String("thing", "", "thing name (required)")
	name := fs.String("name", "", "named shadow (default: the classic shadow)")
	var desired, reported keyValues
	fs.Var(&desired, "desired", "update: desired `key=value` (repeatable; value parsed as JSON when it parses, else a string; dots nest: a.b=1; null deletes)")
	fs.Var(&reported, "reported", "update: reported `key=value` (repeatable, as --desired)")
	doc := fs.String("json", "", "update: the whole request `DOC`, e.g. '{\"state\":{\"desired\":{\"led\":\"on\"}}}', or @FILE to read it from a file")
	version := fs.Int64("version", 0, "update: apply only if the shadow is at this version (optimistic locking; 409 otherwise)")

	if len(args) == 0 {
		fs.Usage()
		return fmt.Errorf("%w: missing operation: get, update or delete", errUsage)
	}
	op := args[0]
	if op == "-h" || op == "-help" || op == "--help" {
		return parseFlags(fs, args)
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	switch op {
	case "get", "delete":
		if desired.m != nil || reported.m != nil || *doc != "" || *version != 0 {
			return fmt.Errorf("%w: --desired, --reported, --json and --version are for update, not %s", errUsage, op)
		}
	case "update":
		if *doc != "" && (desired.m != nil || reported.m != nil) {
			return fmt.Errorf("%w: use either --json or --desired/--reported, not both", errUsage)
		}
		if *doc == "" && desired.m == nil && reported.m == nil {
			return fmt.Errorf("%w: update needs --desired k=v, --reported k=v or --json DOC", errUsage)
		}
	default:
		return fmt.Errorf("%w: unknown operation %q: want get, update or delete", errUsage, op)
	}
	if err := cf.check(); err != nil {
		return err
	}
	if *thing == "" {
		return fmt.Errorf("%w: --thing is required", errUsage)
	}
	var body []byte
	if *doc != "" {
		body = []byte(*doc)
		if path, ok := strings.CutPrefix(*doc, "@"); ok {
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("read --json file: %w", err)
			}
			body = b
		}
		if *version != 0 {
			return fmt.Errorf("%w: put \"version\" into the --json document instead of --version", errUsage)
		}
	}
	k := shadowsync.Key{Thing: *thing, Name: *name}
	if err := k.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}

	conn, closeConn, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	client, err := shadowsync.New(shadowsync.IOT(conn), shadowsync.Options{Timeout: *cf.timeout})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		client.Close(cctx)
	}()
	sh, err := client.Open(ctx, k, shadowsync.ShadowOptions{OnDemand: true, NoAutoSync: true})
	if err != nil {
		return classify(err)
	}

	var raw json.RawMessage
	switch op {
	case "get":
		var d *shadowsync.Document
		if d, err = sh.Get(ctx); err == nil {
			raw = d.Raw
		}
	case "delete":
		var d *shadowsync.Deleted
		if d, err = sh.Delete(ctx); err == nil {
			raw = d.Raw
		}
	case "update":
		var a *shadowsync.Accepted
		if body != nil {
			a, err = sh.UpdateJSON(ctx, body)
		} else {
			a, err = sh.Update(ctx, shadowsync.UpdateRequest{Desired: desired.m, Reported: reported.m, Version: *version})
		}
		if err == nil {
			raw = a.Raw
		}
	}
	if err != nil {
		return classify(err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		out.Reset()
		out.Write(raw)
	}
	fmt.Fprintln(e.stdout, out.String())
	return nil
}

// classify maps a request error to the command's exit code.
func classify(err error) error {
	var rej *shadowsync.RejectedError
	switch {
	case errors.As(err, &rej):
		return &exitError{code: exitRejected, err: err}
	case errors.Is(err, shadowsync.ErrTimeout), errors.Is(err, iot.ErrNotConnected),
		errors.Is(err, iot.ErrOperationTimeout), errors.Is(err, context.DeadlineExceeded):
		return &exitError{code: exitUnreachable, err: err}
	}
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
