package jobs_test

import (
	"context"
	"errors"
	"log"

	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/jobs"
)

// A minimal job runner: every notify-next (and every resync after a
// reconnect) wakes it; it starts the next execution, does the work and
// reports the result.
func Example() {
	ctx := context.Background()
	conn, err := iot.New(iot.Config{Endpoint: "127.0.0.1:1883", Transport: iot.TransportTCP, ClientID: "pi"})
	if err != nil {
		log.Fatal(err)
	}
	wake := make(chan struct{}, 1)
	client, err := jobs.NewIOT(ctx, conn, "pi", jobs.Options{
		OnNotifyNext: func(n jobs.NextJob) {
			select {
			case wake <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)
	if err := conn.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	for range wake {
		x, err := client.StartNext(ctx, jobs.StartNextOptions{StepTimeoutInMinutes: 10})
		if err != nil || x == nil {
			continue // nothing to do, or offline: the next resync wakes us
		}
		status, details := jobs.StatusSucceeded, map[string]string{"result": "done"}
		// … act on x.JobDocument …
		_, err = client.Update(ctx, x.JobID, jobs.Update{Status: status, StatusDetails: details, ExpectedVersion: x.VersionNumber})
		if errors.Is(err, jobs.ErrTerminalStateReached) {
			log.Printf("job %s was cancelled or timed out meanwhile", x.JobID)
		}
	}
}
