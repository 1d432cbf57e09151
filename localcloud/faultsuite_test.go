//go:build faults

package localcloud

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/localcloud/devcerts"
)

// lockedBuf is a log sink tests read while the server writes.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFaultPlaintextOnTLSPort (fault suite): a client speaking plain MQTT to
// the mutual-TLS port. Asserts: the server closes that connection within a
// few seconds (it never hangs holding it), and a device with a certificate
// connected at the same time keeps working, and the log says why.
func TestFaultPlaintextOnTLSPort(t *testing.T) {
	dir := t.TempDir()
	if err := devcerts.WriteSet(dir, "tls-thing", false); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuf{}
	o := testOptions(t)
	o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, tWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	o.TLSListen = "127.0.0.1:0"
	o.TLSCertFile = filepath.Join(dir, devcerts.ServerCertFile)
	o.TLSKeyFile = filepath.Join(dir, devcerts.ServerKeyFile)
	o.ClientCAFile = filepath.Join(dir, devcerts.CACertFile)
	s := startServer(t, o)
	addr := endpoint(t, s, "mqtts")
	dev, err := tls.LoadX509KeyPair(filepath.Join(dir, devcerts.DeviceCertFile), filepath.Join(dir, devcerts.DeviceKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	good := connect(t, "ssl://"+addr, clientTLS(t, dir, &dev))
	good.subscribe("$aws/things/tls-thing/shadow/update/accepted")

	// An MQTT 3.1.1 CONNECT, client id "plain", in the clear.
	connectPacket := []byte{0x10, 0x11, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x05, 'p', 'l', 'a', 'i', 'n'}
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := c.Write(connectPacket); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 512)
		var got []byte
		for {
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("plaintext client %d still connected after 10 s: the TLS port holds connections that never handshake", i+1)
				}
				break // closed by the server
			}
		}
		c.Close()
		if len(got) > 0 && got[0] == 0x20 {
			t.Fatalf("plaintext client got a CONNACK on the TLS port: % x", got)
		}
		t.Logf("plaintext client %d closed after %v (it got %d bytes: a TLS alert, not MQTT)", i+1, time.Since(start).Round(time.Millisecond), len(got))
	}
	good.publish("$aws/things/tls-thing/shadow/update", `{"state":{"reported":{"after":"plaintext"}},"clientToken":"p"}`)
	if acc := good.expect("$aws/things/tls-thing/shadow/update/accepted"); acc["clientToken"] != "p" {
		t.Errorf("the TLS device's update after the plaintext clients: %v", acc)
	}
	// The reason is logged (at debug level: a port scanner must not flood
	// the log).
	if l := logs.String(); !strings.Contains(l, "does not look like a TLS handshake") {
		t.Errorf("the server log does not say why the plaintext clients were closed:\n%s", l)
	}
}
