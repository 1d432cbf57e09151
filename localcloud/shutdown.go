package localcloud

import (
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// mochi v2.7.9's Server.Close has two hazards this file works around:
//
//   - its listener close hook (Clients.GetByListener) takes the clients' read
//     lock twice; a client disconnecting at that moment queues a writer in
//     between and both wait for ever;
//   - it calls ClientsWg.Wait while a connection accepted just before may
//     still be about to call ClientsWg.Add (a WaitGroup misuse the race
//     detector reports).
//
// So shutdown closes each listener itself with a hook that does nothing
// (Close will not run the hook again), waits until every accepted
// connection has reached mochi (its first Read comes after the Add), and
// keeps disconnecting clients until Server.Close has returned.

// establishTimeout bounds the wait for accepted connections to reach
// mochi; a connection's first Read follows its accept by microseconds.
const establishTimeout = 5 * time.Second

// trackingListener counts accepted connections that have not been read
// from yet.
type trackingListener struct {
	net.Listener
	mu      sync.Mutex
	pending int
	idle    chan struct{} // closed while pending == 0
}

func newTrackingListener(ln net.Listener) *trackingListener {
	idle := make(chan struct{})
	close(idle)
	return &trackingListener{Listener: ln, idle: idle}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	if l.pending == 0 {
		l.idle = make(chan struct{})
	}
	l.pending++
	l.mu.Unlock()
	return &trackedConn{Conn: c, l: l}, nil
}

func (l *trackingListener) reached() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pending--; l.pending == 0 {
		close(l.idle)
	}
}

// waitIdle waits until no accepted connection is still on its way to
// mochi, or the timeout passes.
func (l *trackingListener) waitIdle(timeout time.Duration) {
	l.mu.Lock()
	idle := l.idle
	l.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	}
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Read(p []byte) (int, error) {
	c.once.Do(c.l.reached)
	return c.Conn.Read(p)
}

func (c *trackedConn) Close() error {
	c.once.Do(c.l.reached)
	return c.Conn.Close()
}

// shutdown stops the broker; see the comment at the top of this file.
func (e *embedded) shutdown() {
	for _, id := range e.listenerIDs {
		e.srv.Listeners.Close(id, func(string) {})
	}
	for _, tl := range e.tracked {
		tl.waitIdle(establishTimeout)
	}
	done := make(chan struct{})
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, cl := range e.srv.Clients.GetAll() {
				if !cl.Net.Inline && !cl.Closed() {
					_ = e.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
				}
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	_ = e.srv.Close()
	close(done)
	<-swept
}
