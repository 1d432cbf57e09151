package discovery

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/localcloud"
)

// TestEndToEndWithTheLocalCloudAsCore: discovery over mutual TLS from the
// local cloud, connect to the core it describes, and a shadow update
// round-trips.
func TestEndToEndWithTheLocalCloudAsCore(t *testing.T) {
	dir := pki(t, "e2e-thing")
	core := localCore(t, dir)
	dh, dp := listenerAddr(t, core, "discovery")
	_, mp := listenerAddr(t, core, "mqtts")
	c := newClient(t, dir, net.JoinHostPort(dh, strconv.Itoa(dp)), nil)

	var retried int
	resp, err := Retry{Sleep: func(context.Context, time.Duration) error { return nil }, OnRetry: func(int, error, time.Duration) { retried++ }}.
		Do(context.Background(), c, "e2e-thing")
	if err != nil {
		t.Fatal(err)
	}
	cands := resp.Candidates()
	if len(cands) != 1 || cands[0].GroupID != localcloud.DiscoveryGroupID || cands[0].CoreArn != localcloud.DiscoveryCoreArn ||
		cands[0].Entry.HostAddress != "127.0.0.1" || cands[0].Entry.PortNumber != mp || retried != 0 {
		t.Fatalf("discovered %+v (retried %d), want the local cloud's mqtts listener", cands, retried)
	}
	routed := newRouted(t, resp, device(dir, "e2e-thing"), nil)
	routed.until(t, iot.EventOnline)
	if d := routed.Destination(); !strings.Contains(d, localcloud.DiscoveryCoreArn) {
		t.Fatalf("connected via %s", d)
	}
	shadowRoundTrip(t, routed.Client, "e2e-thing")

	t.Run("ALPN x-amzn-http-ca as on port 443", func(t *testing.T) {
		c := newClient(t, dir, net.JoinHostPort(dh, strconv.Itoa(dp)), nil)
		c.tr.TLSClientConfig.NextProtos = []string{ALPNProtocol}
		if _, err := c.Discover(context.Background(), "e2e-thing"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("invalid thing name is 400", func(t *testing.T) {
		if _, err := c.Discover(context.Background(), "no spaces allowed"); !errors.Is(err, ErrBadRequest) {
			t.Errorf("err = %v, want ErrBadRequest", err)
		}
	})
}
