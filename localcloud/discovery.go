package localcloud

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Greengrass discovery as the local cloud serves it: the server describes
// itself as the only core of one group, reachable at its MQTT mutual-TLS
// listener, with the CA that signed its server certificate as the group
// CA. A device can then discover, connect to "the core" and keep its
// shadow, entirely locally.

// DiscoveryALPN is the ALPN protocol AWS clients offer for discovery on
// port 443; the discovery listener accepts it and plain HTTP/1.1.
const DiscoveryALPN = "x-amzn-http-ca"

// The group and core the local cloud describes itself as.
const (
	DiscoveryGroupID = "pinshadow-local-group"
	DiscoveryCoreArn = "arn:aws:iot:local:000000000000:thing/pinshadow-localcloud"
)

// discoveryPrefix is the path of AWS's discovery API.
const discoveryPrefix = "/greengrass/discover/thing/"

// discoveryThing is AWS's thing-name rule.
var discoveryThing = regexp.MustCompile(`^[a-zA-Z0-9:_-]{1,128}$`)

// The JSON the discovery API answers (AWS's field names).
type (
	ggResponse struct {
		Groups []ggGroup `json:"GGGroups"`
	}
	ggGroup struct {
		ID    string   `json:"GGGroupId"`
		Cores []ggCore `json:"Cores"`
		CAs   []string `json:"CAs"`
	}
	ggCore struct {
		ThingArn     string           `json:"thingArn"`
		Connectivity []ggConnectivity `json:"Connectivity"`
	}
	ggConnectivity struct {
		ID       string `json:"Id"`
		Host     string `json:"HostAddress"`
		Port     int    `json:"PortNumber"`
		Metadata string `json:"Metadata"`
	}
)

// discoveryServer is the HTTPS mutual-TLS discovery listener.
type discoveryServer struct {
	ln   net.Listener
	srv  *http.Server
	body []byte
	log  *slog.Logger
	done chan struct{}
	// served is set by serve; close waits for the goroutine only then.
	served bool
}

// newDiscovery binds the listener and prepares the answer: mqtts is the
// MQTT mutual-TLS listener's bound address.
func newDiscovery(o *Options, mqtts net.Addr) (*discoveryServer, error) {
	cfg, err := serverTLSConfig(o.TLSCertFile, o.TLSKeyFile, o.ClientCAFile)
	if err != nil {
		return nil, err
	}
	cfg.NextProtos = []string{DiscoveryALPN, "http/1.1"}
	caFile := o.DiscoveryCAFile
	if caFile == "" {
		caFile = o.ClientCAFile
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("discovery group CA: %w", err)
	}
	if !strings.Contains(string(ca), "-----BEGIN CERTIFICATE-----") {
		return nil, fmt.Errorf("discovery group CA %s: no PEM certificate found", caFile)
	}
	body, err := discoveryBody(o.DiscoveryHosts, mqtts, string(ca))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.DiscoveryListen)
	if err != nil {
		return nil, fmt.Errorf("discovery listener: %w", err)
	}
	d := &discoveryServer{ln: ln, body: body, log: o.Logger.With("component", "discovery"), done: make(chan struct{})}
	d.ln = tlsListener{Listener: ln, cfg: cfg}
	d.srv = &http.Server{
		Handler:           http.HandlerFunc(d.handle),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
	return d, nil
}

// tlsListener does TLS itself and hides the *tls.Conn from net/http: the
// server closes a connection whose negotiated ALPN protocol it has no
// handler for, and x-amzn-http-ca is plain HTTP/1.1.
type tlsListener struct {
	net.Listener
	cfg *tls.Config
}

func (l tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return hiddenTLS{tls.Server(c, l.cfg)}, nil
}

// hiddenTLS is a TLS connection net/http takes for a plain one.
type hiddenTLS struct{ *tls.Conn }

// connKey is the context key of the request's connection.
type connKey struct{}

// discoveryBody is the one answer the local core gives: an entry per
// advertised host at the mqtts listener's port.
func discoveryBody(hosts []string, mqtts net.Addr, ca string) ([]byte, error) {
	h, p, err := net.SplitHostPort(mqtts.String())
	if err != nil {
		return nil, fmt.Errorf("discovery: mqtts listener address %s: %w", mqtts, err)
	}
	port, _ := strconv.Atoi(p)
	if len(hosts) == 0 {
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			// Listening everywhere names no address; the development
			// server certificate is for localhost.
			h = "localhost"
		}
		hosts = []string{h}
	}
	core := ggCore{ThingArn: DiscoveryCoreArn}
	for i, host := range hosts {
		core.Connectivity = append(core.Connectivity, ggConnectivity{
			ID: strconv.Itoa(i + 1), Host: host, Port: port, Metadata: "pinshadow local cloud, MQTT over mutual TLS",
		})
	}
	return json.Marshal(ggResponse{Groups: []ggGroup{{ID: DiscoveryGroupID, Cores: []ggCore{core}, CAs: []string{ca}}}})
}

func (d *discoveryServer) serve() {
	d.served = true
	go func() {
		defer close(d.done)
		if err := d.srv.Serve(d.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("discovery listener stopped", "err", err)
		}
	}()
}

// close stops the listener and waits for the server goroutine (when it
// was started).
func (d *discoveryServer) close() {
	d.srv.Close()
	d.ln.Close()
	if d.served {
		<-d.done
	}
}

// apiError answers in AWS's error shape.
func apiError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]string{"message": msg})
	reply(w, status, b)
}

// reply writes the response itself, with lower-case header names: the v1
// SDK reads the body length with a case-sensitive "content-length: N", and
// net/http would send "Content-Length". One request per connection, as
// the v1 SDK makes.
func reply(w http.ResponseWriter, status int, body []byte) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n",
		status, http.StatusText(status), len(body))
	_, _ = buf.Write(body)
	_ = buf.Flush()
}

func (d *discoveryServer) handle(w http.ResponseWriter, r *http.Request) {
	esc := r.URL.EscapedPath()
	if !strings.HasPrefix(esc, discoveryPrefix) {
		apiError(w, http.StatusNotFound, "not found: the discovery API is GET "+discoveryPrefix+"<thing>")
		return
	}
	if r.Method != http.MethodGet {
		apiError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	thing, err := url.PathUnescape(strings.TrimPrefix(esc, discoveryPrefix))
	if err != nil || !discoveryThing.MatchString(thing) {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("invalid thing name %q: 1–128 of a-z A-Z 0-9 : _ -", thing))
		return
	}
	cn := ""
	if c, ok := r.Context().Value(connKey{}).(hiddenTLS); ok {
		// The handshake is done: the request was read through it.
		if st := c.ConnectionState(); len(st.PeerCertificates) > 0 {
			cn = st.PeerCertificates[0].Subject.CommonName
		}
	}
	d.log.Info("discovery", "thing", thing, "client_cn", cn)
	reply(w, http.StatusOK, d.body)
}
