package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/jobs"
)

// stringList collects a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	if s == "" {
		return errors.New("empty value")
	}
	*l = append(*l, s)
	return nil
}

// runJobs is 'agent jobs create|list|describe|cancel|remove': the cloud
// side of IoT Jobs on the local cloud ('agent cloud'), through its
// management API on MQTT. Output is the reply's JSON; exit codes as for
// 'agent shadow' (3 rejected, 4 unreachable).
func runJobs(ctx context.Context, e *env, args []string) error {
	const synopsis = "create|list|describe|cancel|remove --endpoint HOST:PORT [--job-id J] [--thing T …] [--document JSON|@FILE|FILE] [--in-progress-timeout D] [--status S] [--force] [--cert F --key F --ca F] [--client-id ID] [--timeout D]"
	fs := newFlags(e, "jobs", synopsis)
	cf := addCloudFlags(fs, "agent-jobs")
	jobID := fs.String("job-id", "", "job ID (1–64 of a-z A-Z 0-9 _ -); required for create, describe, cancel and remove")
	var things stringList
	fs.Var(&things, "thing", "create: a target thing (repeatable); list: list this thing's executions; describe, cancel, remove: this thing's execution")
	document := fs.String("document", "", "create: the job document, a JSON object: inline ('{\"type\":\"reboot\"}'), @FILE or a FILE path")
	description := fs.String("description", "", "create: free-text description")
	inProgress := fs.Duration("in-progress-timeout", 0, "create: time out executions that stay IN_PROGRESS this long (whole minutes, 1m–168h; default none)")
	status := fs.String("status", "", "list: only jobs (IN_PROGRESS, CANCELED, COMPLETED) or executions (QUEUED, IN_PROGRESS, SUCCEEDED, …) in this status")
	force := fs.Bool("force", false, "cancel, remove: also stop IN_PROGRESS executions")
	comment := fs.String("comment", "", "cancel: why the job is cancelled")
	reason := fs.String("reason-code", "", "cancel: a reason code for the cancellation")

	if len(args) == 0 {
		fs.Usage()
		return fmt.Errorf("%w: missing operation: create, list, describe, cancel or remove", errUsage)
	}
	op := args[0]
	if op == "-h" || op == "-help" || op == "--help" {
		return parseFlags(fs, args)
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	// allowed lists the operation's own flags; the connection flags go
	// with every operation.
	allowed := map[string][]string{
		"create":   {"job-id", "thing", "document", "description", "in-progress-timeout"},
		"list":     {"thing", "status"},
		"describe": {"job-id", "thing"},
		"cancel":   {"job-id", "thing", "force", "comment", "reason-code"},
		"remove":   {"job-id", "thing", "force"},
	}
	own, ok := allowed[op]
	if !ok {
		return fmt.Errorf("%w: unknown operation %q: want create, list, describe, cancel or remove", errUsage, op)
	}
	for name := range set {
		switch name {
		case "endpoint", "cert", "key", "ca", "timeout", "client-id":
			continue
		}
		found := false
		for _, o := range own {
			found = found || o == name
		}
		if !found {
			return fmt.Errorf("%w: --%s is not a flag of 'jobs %s'", errUsage, name, op)
		}
	}
	if err := cf.check(); err != nil {
		return err
	}
	if op != "list" && *jobID == "" {
		return fmt.Errorf("%w: %s needs --job-id", errUsage, op)
	}
	if op != "create" && len(things) > 1 {
		return fmt.Errorf("%w: %s takes one --thing", errUsage, op)
	}
	thing := ""
	if len(things) == 1 {
		thing = things[0]
	}
	var create jobs.CreateRequest
	switch op {
	case "create":
		if len(things) == 0 || *document == "" {
			return fmt.Errorf("%w: create needs --thing (one or more) and --document", errUsage)
		}
		doc, err := readDocument(*document)
		if err != nil {
			return err
		}
		create = jobs.CreateRequest{JobID: *jobID, Targets: things, Document: doc, Description: *description}
		if *inProgress != 0 {
			if *inProgress < time.Minute || *inProgress%time.Minute != 0 {
				return fmt.Errorf("%w: --in-progress-timeout %v: want whole minutes, at least 1m", errUsage, *inProgress)
			}
			create.TimeoutConfig = &jobs.TimeoutConfig{InProgressTimeoutInMinutes: int64(*inProgress / time.Minute)}
		}
	case "remove":
		if thing == "" {
			return fmt.Errorf("%w: remove needs --thing", errUsage)
		}
	}

	conn, closeConn, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	cctx, cancel := context.WithTimeout(ctx, *cf.timeout)
	defer cancel()
	m, err := jobs.NewManager(cctx, jobs.IOT(conn), *cf.timeout)
	if err != nil {
		return classifyJobs(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		m.Close(cctx)
	}()

	var out any
	switch op {
	case "create":
		out, err = m.Create(ctx, create)
	case "list":
		var rep *jobs.ManagementReply
		if rep, err = m.List(ctx, jobs.ListRequest{ThingName: thing, Status: *status}); err == nil {
			if thing != "" {
				out = map[string]any{"thingName": thing, "executions": nonNil(rep.Executions)}
			} else {
				out = map[string]any{"jobs": nonNil(rep.Jobs)}
			}
		}
	case "describe":
		var rep *jobs.ManagementReply
		if rep, err = m.Describe(ctx, jobs.DescribeRequest{JobID: *jobID, ThingName: thing}); err == nil {
			out = pick(rep)
		}
	case "cancel", "remove":
		r := jobs.CancelRequest{JobID: *jobID, ThingName: thing, Force: *force, Comment: *comment, ReasonCode: *reason}
		var rep *jobs.ManagementReply
		if op == "cancel" {
			rep, err = m.Cancel(ctx, r)
		} else {
			rep, err = m.Remove(ctx, r)
		}
		if err == nil {
			out = pick(rep)
		}
	}
	if err != nil {
		return classifyJobs(err)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, string(b))
	return nil
}

// pick returns the job or the execution of a reply.
func pick(rep *jobs.ManagementReply) any {
	if rep.Execution != nil {
		return rep.Execution
	}
	return rep.Job
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// readDocument takes inline JSON, @FILE or a file path, and checks that it
// is a JSON object.
func readDocument(v string) (json.RawMessage, error) {
	b := []byte(v)
	if t := strings.TrimSpace(v); !strings.HasPrefix(t, "{") && !strings.HasPrefix(t, "[") {
		path := strings.TrimPrefix(v, "@")
		var err error
		if b, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("%w: --document %q is neither inline JSON nor a readable file: %v", errUsage, v, err)
		}
	}
	b = bytes.TrimSpace(b)
	var obj map[string]any
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, fmt.Errorf("%w: --document: the job document must be a JSON object: %v", errUsage, err)
	}
	return b, nil
}

// classifyJobs maps a request error to the command's exit code.
func classifyJobs(err error) error {
	var rej *jobs.RejectedError
	switch {
	case errors.As(err, &rej):
		return &exitError{code: exitRejected, err: err}
	case errors.Is(err, jobs.ErrTimeout), errors.Is(err, iot.ErrNotConnected),
		errors.Is(err, iot.ErrOperationTimeout), errors.Is(err, context.DeadlineExceeded):
		return &exitError{code: exitUnreachable, err: err}
	}
	return err
}
