package shadowsync_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/shadowsync"
)

// A device keeps its classic shadow in step: it applies deltas and reports
// what the hardware has. (Not run: it needs a broker.)
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	conn, err := iot.New(iot.Config{Endpoint: "127.0.0.1:1883", Transport: iot.TransportTCP, ClientID: "pi"})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(context.Background())
	// NewIOT calls Reconnected on every online event: get, offline deltas,
	// full reported re-publish.
	shadows, err := shadowsync.NewIOT(conn, shadowsync.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer shadows.Close(context.Background())
	if err := conn.Connect(ctx); err != nil {
		log.Print(err) // keeps connecting in the background
	}

	s, err := shadows.Open(ctx, shadowsync.Key{Thing: "pi"}, shadowsync.ShadowOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for d := range s.Deltas() {
		// Apply d.State to the hardware, then report what it now has.
		if err := s.Report(d.State); err != nil {
			log.Print(err)
		}
	}
}

// Requests return typed errors for what callers act on.
func ExampleShadow_Update() {
	var s *shadowsync.Shadow // from Client.Open
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	m := s.Mirror()
	_, err := s.Update(ctx, shadowsync.UpdateRequest{Desired: map[string]any{"led": nil}, Version: m.Version})
	var rej *shadowsync.RejectedError
	switch {
	case errors.Is(err, shadowsync.ErrConflict):
		// Someone changed the shadow since the mirror's version: get, retry.
	case errors.As(err, &rej):
		log.Printf("rejected: %d %s", rej.Code, rej.Message)
	case errors.Is(err, shadowsync.ErrTimeout):
		// No answer: offline, or the service is down.
	}
}
