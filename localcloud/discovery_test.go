package localcloud

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pinshadow/pinshadow/localcloud/devcerts"
)

func discoveryServerOpts(t *testing.T, dir string) Options {
	o := testOptions(t)
	o.TLSListen = "127.0.0.1:0"
	o.DiscoveryListen = "127.0.0.1:0"
	o.TLSCertFile = filepath.Join(dir, devcerts.ServerCertFile)
	o.TLSKeyFile = filepath.Join(dir, devcerts.ServerKeyFile)
	o.ClientCAFile = filepath.Join(dir, devcerts.CACertFile)
	return o
}

func TestDiscoveryListener(t *testing.T) {
	dir := t.TempDir()
	if err := devcerts.WriteSet(dir, "disc-thing", false); err != nil {
		t.Fatal(err)
	}
	o := discoveryServerOpts(t, dir)
	o.DiscoveryHosts = []string{"core.lan", "192.168.1.20"}
	s := startServer(t, o)
	_, mqttsPort, _ := net.SplitHostPort(endpoint(t, s, "mqtts"))
	addr := endpoint(t, s, "discovery")
	dev, err := tls.LoadX509KeyPair(filepath.Join(dir, devcerts.DeviceCertFile), filepath.Join(dir, devcerts.DeviceKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	client := func(cert *tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS(t, dir, cert)}}
	}
	get := func(c *http.Client, method, path string) (int, string, error) {
		req, _ := http.NewRequestWithContext(context.Background(), method, "https://"+addr+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	c := client(&dev)
	defer c.CloseIdleConnections()

	code, body, err := get(c, "GET", "/greengrass/discover/thing/disc-thing")
	if err != nil || code != 200 {
		t.Fatalf("GET = %d %s, %v", code, body, err)
	}
	var r ggResponse
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Groups) != 1 || r.Groups[0].ID != DiscoveryGroupID || len(r.Groups[0].Cores) != 1 || len(r.Groups[0].CAs) != 1 ||
		!strings.HasPrefix(r.Groups[0].CAs[0], "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("response %s", body)
	}
	entries := r.Groups[0].Cores[0].Connectivity
	if len(entries) != 2 || entries[0].Host != "core.lan" || entries[1].Host != "192.168.1.20" || mqttsPort != itoa(entries[0].Port) {
		t.Errorf("entries %+v, want core.lan and 192.168.1.20 at port %s", entries, mqttsPort)
	}
	for _, tt := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/greengrass/discover/thing/bad%20name", 400},
		{"GET", "/greengrass/discover/thing/", 400},
		{"POST", "/greengrass/discover/thing/disc-thing", 405},
		{"GET", "/other", 404},
	} {
		if code, body, err := get(c, tt.method, tt.path); err != nil || code != tt.code || !strings.Contains(body, `"message"`) {
			t.Errorf("%s %s = %d %s, %v; want %d", tt.method, tt.path, code, body, err, tt.code)
		}
	}
	t.Run("no client certificate refused", func(t *testing.T) {
		c := client(nil)
		defer c.CloseIdleConnections()
		if _, _, err := get(c, "GET", "/greengrass/discover/thing/disc-thing"); err == nil {
			t.Error("served without a client certificate")
		}
	})
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestDiscoveryBodyDefaults(t *testing.T) {
	for listen, want := range map[string]string{"0.0.0.0:8883": "localhost", "[::]:8883": "localhost", "127.0.0.1:8883": "127.0.0.1"} {
		addr, _ := net.ResolveTCPAddr("tcp", listen)
		b, err := discoveryBody(nil, addr, "CA")
		if err != nil {
			t.Fatal(err)
		}
		var r ggResponse
		_ = json.Unmarshal(b, &r)
		if e := r.Groups[0].Cores[0].Connectivity; len(e) != 1 || e[0].Host != want || e[0].Port != 8883 {
			t.Errorf("%s: entries %+v, want %s:8883", listen, e, want)
		}
	}
}

func TestDiscoveryOptions(t *testing.T) {
	dir := t.TempDir()
	if err := devcerts.WriteSet(dir, "x", false); err != nil {
		t.Fatal(err)
	}
	o := discoveryServerOpts(t, dir)
	o.TLSListen = ""
	if _, err := New(o); !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), "--tls-listen") {
		t.Errorf("without --tls-listen: %v", err)
	}
	o = discoveryServerOpts(t, dir)
	o.DiscoveryHosts = []string{"host:8883"}
	if _, err := New(o); !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), "no port") {
		t.Errorf("host with port: %v", err)
	}
	o = discoveryServerOpts(t, dir)
	o.DiscoveryCAFile = filepath.Join(dir, devcerts.CAKeyFile)
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("CA file without a certificate: %v", err)
	}
}

// TestDiscoveryAsTheV1SDKReadsIt sends the v1 Python SDK's exact request
// and parses the answer its way: headers up to CRLFCRLF, the status from
// "HTTP/1.1 (\d+) ", the length from a case-sensitive "content-length:
// (\d+)\r\n", then exactly that many bytes.
func TestDiscoveryAsTheV1SDKReadsIt(t *testing.T) {
	dir := t.TempDir()
	if err := devcerts.WriteSet(dir, "v1-thing", false); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, discoveryServerOpts(t, dir))
	addr := endpoint(t, s, "discovery")
	dev, err := tls.LoadX509KeyPair(filepath.Join(dir, devcerts.DeviceCertFile), filepath.Join(dir, devcerts.DeviceKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	for thing, status := range map[string]string{"v1-thing": "200", "bad%20thing": "400"} {
		cfg := clientTLS(t, dir, &dev)
		cfg.NextProtos = []string{DiscoveryALPN} // as on port 443
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET /greengrass/discover/thing/%s HTTP/1.1\r\nHost: %s\r\n\r\n", thing, addr)
		raw, err := io.ReadAll(conn)
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		head, body, ok := strings.Cut(string(raw), "\r\n\r\n")
		m := regexp.MustCompile(`HTTP/1.1 (\d+) `).FindStringSubmatch(head)
		n := regexp.MustCompile(`content-length: (\d+)\r\n`).FindStringSubmatch(head + "\r\n")
		if !ok || m == nil || m[1] != status || n == nil || n[1] != strconv.Itoa(len(body)) {
			t.Errorf("%s: status %v, length %v for a %d-byte body:\n%s", thing, m, n, len(body), head)
		}
	}
}
