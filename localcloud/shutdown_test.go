package localcloud

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// Closing the cloud while clients connect and disconnect must not hang
// (mochi v2.7.9's own Close can deadlock on its clients' lock then).
func TestCloseWhileClientsChurn(t *testing.T) {
	for round := 0; round < 10; round++ {
		s, err := New(testOptions(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		addr := endpoint(t, s, "mqtt")
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					c, err := dial(addr, nil)
					if err != nil {
						// Refused once the listener is closed: keep trying
						// until the test stops us, with a real dial to pace.
						if conn, derr := net.DialTimeout("tcp", addr, 50*time.Millisecond); derr == nil {
							conn.Close()
						}
						continue
					}
					c.c.Disconnect(0)
				}
			}()
		}
		// Let some clients in, then close while they come and go.
		c := connect(t, addr, nil)
		c.c.Disconnect(0)
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: Close hung with clients connecting and disconnecting", round)
		}
		stop()
		wg.Wait()
	}
}
