package iot_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/pinshadow/pinshadow/iot"
)

// A device connection to AWS IoT over mutual TLS, as the shadow client
// would use it: subscribe with a handler (restored on every reconnect),
// follow online/offline events, publish with a context.
func Example() {
	c, err := iot.New(iot.Config{
		Endpoint: "abc123-ats.iot.eu-west-1.amazonaws.com", // port 8883
		ClientID: "greenhouse-pi",
		CertFile: "/etc/pinshadow/device.pem.crt",
		KeyFile:  "/etc/pinshadow/private.pem.key", // mode 0600
		CAFile:   "/etc/pinshadow/AmazonRootCA1.pem",
		Backoff:  iot.BackoffConfig{Base: time.Second, Max: 32 * time.Second, Stable: 20 * time.Second},
		Queue:    iot.QueueConfig{Size: 500, Path: "/var/lib/pinshadow/queue.db"},
	})
	if err != nil {
		log.Fatal(err) // e.g. "private key … is accessible by group or others (mode 0640) …: run chmod 600 …"
	}
	defer c.Close(context.Background())

	ctx := context.Background()
	delta := "$aws/things/greenhouse-pi/shadow/update/delta"
	if err := c.Subscribe(ctx, delta, iot.QoS1, func(m iot.Message) {
		log.Printf("delta: %s", m.Payload)
	}); err != nil {
		log.Fatal(err)
	}

	events, stop := c.Watch(16)
	defer stop()
	go func() {
		for ev := range events {
			if ev.Type == iot.EventOnline {
				// Re-get the shadow and re-report here: subscriptions are
				// already restored.
				_, err := c.Publish(ctx, "$aws/things/greenhouse-pi/shadow/get", []byte(`{}`), iot.QoS1, iot.WithoutQueue())
				if err != nil {
					log.Print(err)
				}
			}
		}
	}()

	// Boots without network? Connect times out, the client keeps trying.
	if err := c.Connect(ctx); err != nil && !errors.Is(err, iot.ErrConnectTimeout) {
		log.Fatal(err) // TLS, credentials or CONNACK refusal: fix the config
	}
	res, err := c.Publish(ctx, "greenhouse/telemetry", []byte(`{"t":21.5}`), iot.QoS1)
	switch {
	case errors.Is(err, iot.ErrQueueFull):
		log.Print("offline and the queue is full; dropped")
	case err != nil:
		log.Print(err)
	case res == iot.Queued:
		log.Print("offline: queued, will be sent after reconnect")
	}
}
