package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pinshadow/pinshadow/agent"
	"github.com/pinshadow/pinshadow/config"
)

//go:embed static
var staticFS embed.FS

// ErrTokenRequired is returned by Serve (and CheckExposure) for a listener
// on a non-loopback address without a token: anyone on the network could
// otherwise read, and perhaps drive, the device.
var ErrTokenRequired = errors.New("console: a non-loopback address needs a token (give --http-token, or let the agent generate one)")

// Agent is what the console reads from the agent (*agent.Agent has it).
type Agent interface {
	Status() agent.Status
	ShadowDocuments() []agent.ShadowDocument
	Config() *config.Config
}

// Fault is one fault the page offers: Kind on Device ("" for the broker).
type Fault struct {
	Kind   string `json:"kind"`
	Device string `json:"device,omitempty"`
}

// Faults injects faults into a simulation.
type Faults interface {
	List() []Fault
	Inject(ctx context.Context, kind, device string) error
}

// Source is what a running agent gives the console.
type Source struct {
	// Mode is shown on the page: "run" or "sim".
	Mode  string
	Agent Agent
	// Desired publishes a desired update of a shadow through the shadow
	// service (nil: the page cannot change desired state).
	Desired func(ctx context.Context, shadow string, patch map[string]any) error
	// Faults, when set, lets the page inject faults (simulation only).
	Faults Faults
}

// Options configure a Server.
type Options struct {
	// Write allows desired changes and fault injection (default
	// read-only: they answer 403).
	Write bool
	// Token, when set, is required on every request (header, or the
	// cookie a ?token= visit sets). Required for non-loopback listeners.
	Token string
	// Logger receives the console's own problems (nil: discarded).
	Logger *slog.Logger
	// Recent is how many events the page gets on (re)connect (default
	// 200); History how many readings per sensor (default 300).
	Recent, History int
	// StatusEvery is the shortest time between two status snapshots on a
	// stream (default 300 ms); Keepalive the longest (default 5 s).
	StatusEvery, Keepalive time.Duration
}

// Server is the console. Create it with New before the agent starts (its
// Publish is the agent's event hook), Attach the running agent, and Serve.
type Server struct {
	o   Options
	hub *hub
	tok [32]byte // SHA-256 of the token: compared in constant time, length hidden

	mu  sync.Mutex
	src Source
}

// New returns a console with nothing attached yet: its pages say the agent
// is starting until Attach.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Recent <= 0 {
		o.Recent = 200
	}
	if o.History <= 0 {
		o.History = 300
	}
	if o.StatusEvery <= 0 {
		o.StatusEvery = 300 * time.Millisecond
	}
	if o.Keepalive <= 0 {
		o.Keepalive = 5 * time.Second
	}
	s := &Server{o: o, hub: newHub(o.Recent, o.History)}
	if o.Token != "" {
		s.tok = sha256.Sum256([]byte(o.Token))
	}
	return s
}

// Attach gives the console the running agent and what it may do.
func (s *Server) Attach(src Source) {
	s.mu.Lock()
	s.src = src
	s.mu.Unlock()
}

func (s *Server) source() Source {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.src
}

// Publish records an agent event and sends it to every open page. It never
// blocks, so it can be (part of) agent.Deps.Events.
func (s *Server) Publish(e agent.Event) { s.hub.publish(e) }

// Handler is the console's HTTP handler (every rule of the package applied).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	files := http.FileServerFS(static)
	mux.Handle("GET /{$}", files)
	mux.Handle("GET /static/", http.StripPrefix("/static", files))
	mux.HandleFunc("GET /api/status", s.handleStatus)
	mux.HandleFunc("GET /api/events", s.handleEvents)
	writes := http.NewCrossOriginProtection()
	mux.Handle("POST /api/desired", s.writeRule(writes.Handler(http.HandlerFunc(s.handleDesired))))
	mux.Handle("POST /api/fault", s.writeRule(writes.Handler(http.HandlerFunc(s.handleFault))))
	return s.guard(mux)
}

// guard applies the token or loopback-host rule and the headers every
// response carries.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer") // the token may be in a URL
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		if s.o.Token == "" {
			if !loopbackHost(r.Host) {
				http.Error(w, "console: this console answers only to localhost, 127.0.0.1 or [::1] (start it with --http-token to use another name)", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if t := r.URL.Query().Get("token"); t != "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			if !s.tokenOK(t) {
				http.Error(w, "console: wrong token", http.StatusUnauthorized)
				return
			}
			http.SetCookie(w, &http.Cookie{Name: cookieName, Value: t, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			u := *r.URL
			q := u.Query()
			q.Del("token")
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
			return
		}
		if !s.tokenOK(requestToken(r)) {
			http.Error(w, "console: a token is needed: open the URL the agent printed at start-up (…?token=…) or send Authorization: Bearer TOKEN", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

const cookieName = "pinshadow_console"

func requestToken(r *http.Request) string {
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
		return strings.TrimPrefix(a, "Bearer ")
	}
	if t := r.Header.Get("X-Pinshadow-Token"); t != "" {
		return t
	}
	if c, err := r.Cookie(cookieName); err == nil {
		return c.Value
	}
	return ""
}

// tokenOK compares hashes, so neither the content nor the length of the
// token leaks through timing.
func (s *Server) tokenOK(t string) bool {
	if t == "" {
		return false
	}
	h := sha256.Sum256([]byte(t))
	return subtle.ConstantTimeCompare(h[:], s.tok[:]) == 1
}

// loopbackHost says whether a Host header names this machine's loopback.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) writeRule(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.o.Write {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "the console is read-only; start the agent with --http-write to change desired values or inject faults"})
			return
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"error": "send the request as application/json"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		next.ServeHTTP(w, r)
	})
}

// CheckExposure refuses a non-loopback address without a token.
func CheckExposure(addr net.Addr, token string) error {
	if token != "" {
		return nil
	}
	if ta, ok := addr.(*net.TCPAddr); ok && ta.IP.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: listening on %s", ErrTokenRequired, addr)
}

// Listen opens the console's listener on addr (host:port). When the port is
// busy and fallback is set, it listens on a free port of the same host
// instead (moved reports it).
func Listen(addr string, fallback bool) (ln net.Listener, moved bool, err error) {
	ln, err = net.Listen("tcp", addr)
	if err == nil {
		return ln, false, nil
	}
	if !fallback || !errors.Is(err, syscall.EADDRINUSE) {
		return nil, false, fmt.Errorf("console: listen on %s: %w (choose another --http address)", addr, err)
	}
	host, _, serr := net.SplitHostPort(addr)
	if serr != nil {
		return nil, false, fmt.Errorf("console: listen on %s: %w", addr, err)
	}
	ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, false, fmt.Errorf("console: listen on a free port of %s: %w", host, err)
	}
	return ln, true, nil
}

// URL is the address to open for ln: loopback for an unspecified host, and
// the token as ?token= when there is one.
func URL(ln net.Listener, token string) string {
	host := "127.0.0.1"
	port := ""
	if ta, ok := ln.Addr().(*net.TCPAddr); ok {
		port = fmt.Sprint(ta.Port)
		if !ta.IP.IsUnspecified() {
			host = ta.IP.String()
		}
	}
	u := "http://" + net.JoinHostPort(host, port) + "/"
	if token != "" {
		u += "?token=" + token
	}
	return u
}

// Serve serves the console on ln until ctx is done (then open event streams
// end and ln is closed). It refuses a non-loopback listener without a token.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := CheckExposure(ln.Addr(), s.o.Token); err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		// Request contexts end with ctx, so event streams end on shutdown.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(s.o.Logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("console: %w", err)
	}
}
