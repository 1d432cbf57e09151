package iot

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/pinshadow/pinshadow/iot/sigv4"
)

// run is the connection loop: connect, serve until the connection drops,
// back off, repeat — forever, until Close. Reconnection is driven here
// rather than by paho (AutoReconnect/ConnectRetry off) so the backoff,
// jitter, resubscription and draining follow this package's rules exactly.
// Each attempt uses a fresh paho client, as paho advises against reusing
// one after a disconnect.
func (c *Client) run() {
	defer func() {
		<-c.dispDone
		c.finish()
		close(c.done)
	}()
	b := NewBackoff(c.cfg.Backoff, c.rand)
	failed := 0 // attempts in a row that did not come online (for the Router)
	for {
		c.setState(StateConnecting)
		cli, watch, sessionPresent, err := c.dial(failed)
		if c.runCtx.Err() != nil {
			if cli != nil {
				cli.Disconnect(uint(c.cfg.DisconnectTimeout.Milliseconds()))
			}
			return
		}
		if err != nil {
			failed++
			wait := b.Failed()
			c.mu.Lock()
			c.attempts++
			c.lastFail = err
			c.stats.ConnectFailures++
			c.stats.LastError, c.stats.LastErrorAt = err, c.now()
			c.state = StateOffline
			c.notifyLocked()
			c.mu.Unlock()
			c.emit(Event{Type: EventConnectFailed, Err: err, RetryIn: wait})
			if !c.sleep(wait) {
				return
			}
			continue
		}
		b.Connected(c.now())
		lostErr, closing, wasOnline := c.serve(cli, watch, sessionPresent)
		if closing {
			cli.Disconnect(uint(c.cfg.DisconnectTimeout.Milliseconds()))
			return
		}
		if !wasOnline {
			// Lost while restoring subscriptions: never announced online,
			// so report a failed attempt rather than a drop.
			failed++
			wait := b.Disconnected(c.now())
			err := fmt.Errorf("iot: connection to %s lost while restoring subscriptions: %w", c.currentEndpoint(), lostErr)
			c.mu.Lock()
			c.attempts++
			c.lastFail = err
			c.stats.ConnectFailures++
			c.stats.LastError, c.stats.LastErrorAt = err, c.now()
			c.state = StateOffline
			c.notifyLocked()
			c.mu.Unlock()
			c.emit(Event{Type: EventConnectFailed, Err: err, RetryIn: wait})
			if !c.sleep(wait) {
				return
			}
			continue
		}
		failed = 0
		wait := b.Disconnected(c.now())
		c.mu.Lock()
		c.state = StateOffline
		c.conn, c.watch = nil, nil
		c.stats.Drops++
		c.stats.OnlineSince = time.Time{}
		c.stats.LastError, c.stats.LastErrorAt = lostErr, c.now()
		c.notifyLocked()
		c.mu.Unlock()
		c.emit(Event{Type: EventOffline, Err: lostErr, RetryIn: wait})
		if !c.sleep(wait) {
			return
		}
	}
}

// sleep waits d or until Close; it reports whether to go on.
func (c *Client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.closeCh:
		return false
	}
}

// attemptConn remembers the network connection of an attempt so it can be
// closed if the attempt is abandoned (connect timeout or Close), which
// makes paho's CONNACK wait return at once.
type attemptConn struct {
	mu      sync.Mutex
	conn    net.Conn
	aborted bool
}

func (a *attemptConn) set(conn net.Conn) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.aborted {
		conn.Close()
		return errors.New("connection attempt abandoned")
	}
	a.conn = conn
	return nil
}

func (a *attemptConn) abort() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.aborted = true
	if a.conn != nil {
		a.conn.Close()
	}
}

// dial makes one connection attempt with a new paho client; failed is how
// many attempts in a row failed before it.
func (c *Client) dial(failed int) (mqtt.Client, *connWatch, bool, error) {
	dest, err := c.destinationFor(failed)
	if err != nil {
		return nil, nil, false, err
	}
	ctx, cancel := context.WithTimeout(c.runCtx, c.cfg.ConnectTimeout)
	defer cancel()
	watch := newConnWatch()
	att := &attemptConn{}

	o := mqtt.NewClientOptions()
	o.AddBroker("tcp://" + dest.endpoint) // the real dial happens in open
	o.SetClientID(c.cfg.ClientID)
	o.SetProtocolVersion(4)
	o.SetCleanSession(!c.cfg.PersistentSession)
	o.SetKeepAlive(c.cfg.KeepAlive)
	o.SetPingTimeout(min(10*time.Second, c.cfg.KeepAlive))
	o.SetConnectTimeout(c.cfg.ConnectTimeout)
	o.SetWriteTimeout(c.cfg.OperationTimeout)
	o.SetAutoReconnect(false)
	o.SetConnectRetry(false)
	o.SetOrderMatters(true) // our handler only enqueues, so ordering costs nothing
	o.SetDefaultPublishHandler(c.receive)
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) { watch.lost(err) })
	o.SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
		conn, err := c.open(ctx, dest)
		if err != nil {
			return nil, err
		}
		if err := att.set(conn); err != nil {
			return nil, err
		}
		return conn, nil
	})
	if c.cfg.Username != "" {
		o.SetUsername(c.cfg.Username)
		if c.cfg.Password != "" {
			o.SetPassword(c.cfg.Password)
		}
	}
	if w := c.cfg.Will; w != nil {
		o.SetBinaryWill(w.Topic, w.Payload, byte(w.QoS), w.Retain)
	}

	cli := mqtt.NewClient(o)
	tok := cli.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		att.abort()
		<-tok.Done() // bounded: dial ctx is cancelled and the socket closed
	}
	if err := tok.Error(); err != nil {
		return nil, nil, false, c.connectError(ctx, dest.endpoint, tok, err)
	}
	ct, _ := tok.(*mqtt.ConnectToken)
	return cli, watch, ct != nil && ct.SessionPresent(), nil
}

// connectError turns paho's connect error into this package's types.
func (c *Client) connectError(ctx context.Context, endpoint string, tok mqtt.Token, err error) error {
	if ct, ok := tok.(*mqtt.ConnectToken); ok {
		if rc := ct.ReturnCode(); rc >= packets.ErrRefusedBadProtocolVersion && rc <= packets.ErrRefusedNotAuthorised {
			return &ConnectRefusedError{Endpoint: endpoint, Code: rc}
		}
	}
	err = unwrapPaho(err)
	var te *TLSError
	if errors.As(err, &te) {
		return te // classified in open, message already complete
	}
	if err := classifyTLS(endpoint, err); errors.Is(err, ErrTLS) {
		return err
	}
	// paho's own CONNACK read deadline is ConnectTimeout too, so its i/o
	// timeout and our context deadline race: both mean the same thing.
	var ne net.Error
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: no CONNACK from %s (%s) within %s: %v", ErrConnectTimeout, endpoint, c.cfg.Transport, c.cfg.ConnectTimeout, err)
	}
	return fmt.Errorf("iot: connecting to %s (%s): %w", endpoint, c.cfg.Transport, err)
}

// unwrapPaho strips paho's "network Error : <cause>" wrapper (built with
// two %w verbs) so messages start with the cause.
func unwrapPaho(err error) error {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		if errs := u.Unwrap(); len(errs) == 2 && errs[0] == packets.ConnErrors[packets.ErrNetworkError] {
			return errs[1]
		}
	}
	return err
}

// open dials the transport. It is called by paho for every attempt, so the
// WebSocket URL is presigned afresh each time.
func (c *Client) open(ctx context.Context, dest destination) (net.Conn, error) {
	switch c.cfg.Transport {
	case TransportTCP:
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", dest.endpoint)
		if err != nil {
			return nil, fmt.Errorf("plain TCP (local development only) to %s: %w", dest.endpoint, err)
		}
		return conn, nil
	case TransportMQTTS, TransportALPN:
		d := &tls.Dialer{Config: dest.tls.Clone()}
		conn, err := d.DialContext(ctx, "tcp", dest.endpoint)
		if err != nil {
			return nil, classifyTLS(dest.endpoint, err)
		}
		return conn, nil
	}
	// WebSocket.
	creds, err := c.creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	scheme, defPort := "wss", 443
	if c.cfg.Transport == TransportWS {
		scheme, defPort = "ws", 80
	}
	hostHeader := c.host
	if c.port != defPort {
		hostHeader = net.JoinHostPort(c.host, strconv.Itoa(c.port))
	}
	u, err := sigv4.IoTWebSocketURL(scheme, hostHeader, c.region, creds, c.now(), 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	var tlsCfg *tls.Config
	if dest.tls != nil {
		tlsCfg = dest.tls.Clone()
	}
	conn, err := mqtt.NewWebsocket(u.String(), tlsCfg, c.cfg.ConnectTimeout, nil, nil)
	if err != nil {
		return nil, classifyTLS(dest.endpoint, fmt.Errorf("websocket %s://%s/mqtt: %w", scheme, hostHeader, err))
	}
	return conn, nil
}

// serve restores subscriptions, goes online, then drains the offline queue
// until the connection drops (lostErr) or Close is called (closing).
func (c *Client) serve(cli mqtt.Client, watch *connWatch, sessionPresent bool) (lostErr error, closing, wasOnline bool) {
	c.mu.Lock()
	c.gen++
	gen := c.gen
	c.mu.Unlock()

	// Restore every recorded subscription, then go online atomically with
	// the check that nothing was added meanwhile (Subscribe while not
	// online only records).
	for {
		c.mu.Lock()
		var pending []*subscription
		for _, s := range c.subs {
			if s.gen != gen {
				pending = append(pending, s)
			}
		}
		if len(pending) == 0 {
			c.state = StateOnline
			c.conn, c.watch = cli, watch
			c.stats.Connects++
			c.stats.OnlineSince = c.now()
			c.notifyLocked()
			c.mu.Unlock()
			break
		}
		c.mu.Unlock()
		err := c.subscribe(c.runCtx, cli, watch, gen, pending)
		switch {
		case errors.Is(err, errConnLost):
			return watch.err, false, false
		case errors.Is(err, ErrClosed), c.runCtx.Err() != nil:
			return nil, true, false
		case err != nil:
			c.emit(Event{Type: EventSubscribeFailed, Err: err})
			c.mu.Lock()
			for _, s := range pending {
				s.gen = gen // do not retry on this connection
			}
			c.mu.Unlock()
		}
	}
	c.emit(Event{Type: EventOnline, SessionPresent: sessionPresent})

	if c.queue == nil {
		select {
		case <-watch.dead:
			return watch.err, false, true
		case <-c.closeCh:
			return nil, true, true
		}
	}
	var next time.Time // earliest time for the next drained message
	drained := false
	for {
		var (
			tick  <-chan time.Time
			timer *time.Timer
		)
		if c.queue.len() > 0 {
			timer = time.NewTimer(max(time.Until(next), 0))
			tick = timer.C
		} else if drained {
			drained = false
			c.emit(Event{Type: EventQueueDrained})
		}
		select {
		case <-watch.dead:
			return watch.err, false, true
		case <-c.closeCh:
			return nil, true, true
		case <-c.wake:
			if timer != nil {
				timer.Stop()
			}
		case <-tick:
			next = time.Now().Add(c.cfg.Queue.DrainInterval)
			if err := c.drainOne(cli, watch); err != nil {
				switch {
				case errors.Is(err, errConnLost):
					return watch.err, false, true
				case errors.Is(err, ErrClosed), errors.Is(err, context.Canceled):
					return nil, true, true
				}
				c.recordError(err)
				continue
			}
			drained = true
		}
	}
}

// drainOne publishes the oldest queued message and removes it once sent.
func (c *Client) drainOne(cli mqtt.Client, watch *connWatch) error {
	m, ok, err := c.queue.front()
	if err != nil || !ok {
		return err
	}
	tok := cli.Publish(m.Topic, byte(m.QoS), m.Retain, m.Payload)
	if err := c.await(c.runCtx, tok, watch); err != nil {
		if errors.Is(err, mqtt.ErrNotConnected) {
			// paho has seen the loss; its callback follows shortly.
			t := time.NewTimer(c.cfg.OperationTimeout)
			defer t.Stop()
			select {
			case <-watch.dead:
				return fmt.Errorf("%w: %v", errConnLost, err)
			case <-c.closeCh:
				return ErrClosed
			case <-t.C:
				return fmt.Errorf("iot: draining offline queue: %w", err)
			}
		}
		return fmt.Errorf("iot: draining offline queue (message to %q): %w", m.Topic, err)
	}
	if err := c.queue.remove(m); err != nil {
		return err
	}
	c.mu.Lock()
	c.stats.Drained++
	c.mu.Unlock()
	return nil
}
