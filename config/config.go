package config

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pinshadow/pinshadow/board"
	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/iot/sigv4"
	"github.com/pinshadow/pinshadow/shadowsync/reconcile"
)

// Config is a validated configuration.
type Config struct {
	// Files lists every file read, the top-level one first.
	Files []string
	// Thing is the AWS IoT thing name.
	Thing string
	// Board is what the configuration asked for: "auto" or a model name.
	Board string
	// Profile is the board the pins were checked against and resolved on.
	Profile board.Profile
	// BoardNote explains how the profile was chosen when that is worth
	// telling (a fallback to generic, an override).
	BoardNote string
	// StateDir holds the agent's state file (default /var/lib/pinshadow).
	StateDir string
	// Connection is the MQTT connection to AWS IoT (or the local cloud).
	Connection Connection
	// Devices in configuration order, options validated and pins resolved.
	Devices []Device
	// Shadows lists each shadow the agent syncs and the keys it carries.
	Shadows []Shadow
	// Jobs is the jobs: section (nil: no section, the agent runs no jobs).
	Jobs *Jobs

	spec reconcile.Spec
	rows []PlanRow
}

// Spec returns the mapping of shadow keys to device properties for the
// reconciler. The lists are fresh on each call; what their entries point
// to (ranges, filters, publish settings) is shared and must not be
// modified.
func (c *Config) Spec() reconcile.Spec {
	s := reconcile.Spec{
		Desired:    append([]reconcile.DesiredKey(nil), c.spec.Desired...),
		Reported:   append([]reconcile.ReportedKey(nil), c.spec.Reported...),
		Interlocks: append([]reconcile.Interlock(nil), c.spec.Interlocks...),
	}
	return s
}

// Device is one configured device: what the daemon needs to open it with
// devices.Registry.Open(ctx, d.Driver, env, d.Options).
type Device struct {
	// ID names the device in mappings and messages.
	ID string
	// Driver is the registry name of its driver ("relay", "bme280").
	Driver string
	// Options is the driver's options value (a pointer to its struct),
	// decoded and validated, with pin, PWM channel and I2C bus names
	// replaced by the names the HAL opens on Profile ("GPIO17" becomes
	// "pinctrl-bcm2711/17").
	Options devices.Options
	// Properties the device will have.
	Properties []devices.Property
	// Wiring is how it is connected, for plans and messages.
	Wiring Wiring
	// Pos is where the device entry starts.
	Pos Position
}

// Wiring describes a device's connection as written and as resolved.
type Wiring struct {
	// Pin is the GPIO line (outputs and inputs), resolved.
	Pin *board.Pin
	// PWM is the hardware PWM channel (pwm, fan, servo) and its pin.
	PWM *board.PWMChannel
	// Bus and Address locate an I2C device (Bus "" otherwise).
	Bus     string
	Address uint16
	// Written is the pin or channel name as the configuration gave it.
	Written string
}

// String describes the wiring in a few words: "GPIO17 (pin 11)",
// "PWM pwmchip0/0 on GPIO18 (pin 12)", "I2C bus 1 @ 0x76", "-".
func (w Wiring) String() string {
	switch {
	case w.PWM != nil && w.Pin != nil && w.Pin.GPIO >= 0:
		return fmt.Sprintf("PWM %s on %s", w.PWM.HALName(), w.Pin)
	case w.PWM != nil:
		return "PWM " + w.PWM.HALName()
	case w.Pin != nil:
		return w.Pin.String()
	case w.Bus != "":
		return fmt.Sprintf("I2C bus %s @ 0x%02x", w.Bus, w.Address)
	}
	return "-"
}

// Shadow is one shadow the agent keeps in step: the classic shadow (Name
// "") or a named one, with the keys it carries.
type Shadow struct {
	// Name is "" for the classic shadow.
	Name string
	// Desired and Reported list the keys mapped, in configuration order.
	Desired  []string
	Reported []string
}

// Connection holds the connection settings. IOT turns them into an
// iot.Config.
type Connection struct {
	// Endpoint is host or host:port (port:, when set, already applied).
	Endpoint string
	// Transport: tls is iot.TransportMQTTS (the default), alpn, wss, tcp.
	Transport iot.Transport
	// ClientID defaults to the thing name.
	ClientID string
	// CertFile and KeyFile authenticate the device (tls, alpn); CAFile is
	// the broker's CA ("" = system roots). Paths are not opened here: the
	// files live on the device, validation may run elsewhere.
	CertFile string
	KeyFile  string
	CAFile   string
	// KeepAlive is 30s–20m, default 60s.
	KeepAlive time.Duration
	// Region and Credentials are for wss only.
	Region      string
	Credentials Credentials
	// Backoff is the reconnect policy, defaults filled in.
	Backoff iot.BackoffConfig
	// Queue is the offline publish queue, defaults filled in (drain_rate
	// becomes DrainInterval).
	Queue iot.QueueConfig
	// Discovery, when Enabled, finds a Greengrass core to connect to
	// instead of Endpoint (see discovery.go).
	Discovery Discovery
}

// Credentials says where wss takes its AWS keys from.
type Credentials struct {
	// Source is "default" (environment, then the shared file), "env" or
	// "file".
	Source string
	// File is the shared credentials file ("" = the standard location).
	File string
	// Profile in that file ("" = $AWS_PROFILE or default).
	Profile string
}

// Provider returns the sigv4 credentials provider for c; getenv nil means
// os.Getenv.
func (c Credentials) Provider(getenv func(string) string) sigv4.Provider {
	switch c.Source {
	case "env":
		return sigv4.Env{Getenv: getenv}
	case "file":
		return sigv4.SharedFile{Path: c.File, Profile: c.Profile, Getenv: getenv}
	}
	return sigv4.Chain{sigv4.Env{Getenv: getenv}, sigv4.SharedFile{Path: c.File, Profile: c.Profile, Getenv: getenv}}
}

// IOT returns the iot.Config for this connection; getenv (nil: os.Getenv)
// is used for wss credentials and region lookups.
func (c Connection) IOT(getenv func(string) string) iot.Config {
	cfg := iot.Config{
		Endpoint:  c.Endpoint,
		Transport: c.Transport,
		ClientID:  c.ClientID,
		CertFile:  c.CertFile,
		KeyFile:   c.KeyFile,
		CAFile:    c.CAFile,
		KeepAlive: c.KeepAlive,
		Region:    c.Region,
		Getenv:    getenv,
		Backoff:   c.Backoff,
		Queue:     c.Queue,
	}
	if c.Transport == iot.TransportWSS {
		cfg.Credentials = c.Credentials.Provider(getenv)
	}
	return cfg
}

// DefaultStateDir is where the agent keeps its state when state_dir is not
// set.
const DefaultStateDir = "/var/lib/pinshadow"

// DefaultUpdateInterval is how often a sensor is read when update_interval
// is not set.
const DefaultUpdateInterval = 60 * time.Second

var thingPattern = regexp.MustCompile(`^[a-zA-Z0-9:_-]{1,128}$`)

// build validates everything collected and assembles the Config.
func (l *loader) build() *Config {
	cfg := &Config{Files: l.files, Board: "auto", StateDir: DefaultStateDir}
	root := l.file(l.files[0])

	if s, ok := l.singles["thing"]; ok {
		fp := l.file(s.file)
		if v, ok := fp.str(s.val, "thing"); ok {
			if thingPattern.MatchString(v) {
				cfg.Thing = v
			} else {
				fp.errf(s.val, "%s", thingProblem(v))
			}
		}
	} else if !l.syntaxErr {
		l.problem(Position{File: root.file, Line: 1, Col: 1}, "thing is missing; add thing: NAME (the AWS IoT thing name, 1–128 of a-z A-Z 0-9 : _ -)")
	}

	if s, ok := l.singles["state_dir"]; ok {
		fp := l.file(s.file)
		if v, ok := fp.str(s.val, "state_dir"); ok {
			if v == "" {
				fp.errf(s.val, "state_dir is empty; give a directory the agent can write, such as %s", DefaultStateDir)
			} else {
				cfg.StateDir = v
			}
		}
	}

	l.chooseBoard(cfg)

	if s, ok := l.singles["connection"]; ok {
		cfg.Connection = l.file(s.file).connection(s, cfg.Thing)
	} else if !l.syntaxErr {
		l.problem(Position{File: root.file, Line: 1, Col: 1}, "connection is missing; add a connection: section with at least endpoint")
	}

	if s, ok := l.singles["jobs"]; ok {
		cfg.Jobs = l.file(s.file).jobs(s)
	}

	devs := l.parseDevices(cfg.Profile)
	for _, d := range devs {
		cfg.Devices = append(cfg.Devices, d.Device)
	}
	l.parseShadows(cfg, devs)
	return cfg
}

func thingProblem(v string) string {
	switch {
	case v == "":
		return "thing is empty; give the AWS IoT thing name (1–128 of a-z A-Z 0-9 : _ -)"
	case len(v) > 128:
		return fmt.Sprintf("thing name is %d characters long; AWS IoT allows at most 128", len(v))
	case strings.ContainsAny(v, "/+#"):
		i := strings.IndexAny(v, "/+#")
		return fmt.Sprintf("thing %q contains %q, which MQTT topics reserve (level separator or wildcard); allowed: a-z A-Z 0-9 : _ -", v, v[i:i+1])
	}
	return fmt.Sprintf("thing %q contains characters AWS IoT does not allow in a thing name; allowed: a-z A-Z 0-9 : _ -", v)
}

func (l *loader) chooseBoard(cfg *Config) {
	want, pos := "auto", Position{}
	if s, ok := l.singles["board"]; ok {
		fp := l.file(s.file)
		if v, ok := fp.str(s.val, "board"); ok {
			want, pos = v, s.pos()
		}
	}
	cfg.Board = want
	if l.opts.Board != "" {
		want, pos = l.opts.Board, Position{}
	}
	if strings.EqualFold(strings.TrimSpace(want), "auto") || want == "" {
		if l.opts.Detect == nil {
			cfg.Profile, _ = board.ByName("generic")
			cfg.BoardNote = "board is auto and no detection was asked for: pins checked against the generic profile"
			return
		}
		d := l.opts.Detect()
		cfg.Profile, cfg.BoardNote = d.Profile, d.Note
		return
	}
	p, err := board.ByName(want)
	if err != nil { // the only error is an unknown name
		if pos.File == "" {
			// The override came from the caller (a flag): report it at
			// the top of the file, where a board: line would go.
			pos = Position{File: l.files[0], Line: 1, Col: 1}
		}
		l.problem(pos, "unknown board %q; allowed: auto, %s%s", want, strings.Join(board.Names(), ", "), didYouMean(want, board.Names()))
		cfg.Profile, _ = board.ByName("generic")
		return
	}
	cfg.Profile = p
}

var connectionKeys = []string{"endpoint", "port", "transport", "cert", "key", "ca", "client_id", "keep_alive", "region", "credentials", "backoff", "queue", "discovery"}

// transports maps the configuration words to iot transports.
var transports = map[string]iot.Transport{"tls": iot.TransportMQTTS, "alpn": iot.TransportALPN, "wss": iot.TransportWSS, "tcp": iot.TransportTCP}

var transportNames = []string{"tls", "alpn", "wss", "tcp"}

func (fp fileParser) connection(s src, thing string) Connection {
	c := Connection{Transport: iot.TransportMQTTS, ClientID: thing, KeepAlive: 60 * time.Second}
	f := map[string]kv{}
	for _, p := range fp.pairs(s.val, "connection", connectionKeys) {
		f[p.name] = p
	}
	if m := deref(s.val); m == nil || m.Kind != yaml.MappingNode {
		if isNull(m) {
			fp.errf(s.key, "connection is empty; give at least endpoint (and cert and key for tls)")
		}
		return c
	}
	if p, ok := f["transport"]; ok {
		if v, ok := fp.choice(p.val, "transport", transportNames); ok {
			c.Transport = transports[v]
		}
	}
	port := 0
	if p, ok := f["port"]; ok {
		if v, ok := fp.integer(p.val, "port", 1, 65535); ok {
			port = v
		}
	}
	if p, ok := f["endpoint"]; ok {
		if v, ok := fp.str(p.val, "endpoint"); ok {
			switch {
			case v == "":
				fp.errf(p.val, "endpoint is empty; give the AWS IoT data endpoint (aws iot describe-endpoint --endpoint-type iot:Data-ATS)")
			case strings.Contains(v, "://"):
				fp.errf(p.val, "endpoint %q has a scheme; write the host only (and port: N), and choose the protocol with transport: %s", v, orList(transportNames))
			default:
				if _, ps, err := net.SplitHostPort(v); err == nil {
					if port != 0 {
						fp.errf(p.val, "endpoint %q already has a port and port: is set too; keep one", v)
					} else if n, err := strconv.Atoi(ps); err != nil || n < 1 || n > 65535 {
						fp.errf(p.val, "endpoint %q: port %q must be 1–65535", v, ps)
					}
					c.Endpoint = v
				} else {
					c.Endpoint = v
					if port != 0 {
						c.Endpoint = net.JoinHostPort(v, strconv.Itoa(port))
					}
				}
			}
		}
	} else {
		fp.errf(s.key, "connection: endpoint is missing; add endpoint: HOST (aws iot describe-endpoint --endpoint-type iot:Data-ATS)")
	}
	files := map[string]*string{"cert": &c.CertFile, "key": &c.KeyFile, "ca": &c.CAFile}
	for _, name := range []string{"cert", "key", "ca"} {
		if p, ok := f[name]; ok {
			if v, ok := fp.str(p.val, name); ok {
				*files[name] = v
				if c.Transport != iot.TransportMQTTS && c.Transport != iot.TransportALPN && name != "ca" {
					fp.errf(p.key, "%s is only used with transport tls or alpn (certificate authentication), not %s; remove it", name, c.Transport)
				}
			}
		}
	}
	if c.Transport == iot.TransportMQTTS || c.Transport == iot.TransportALPN {
		for _, name := range []string{"cert", "key"} {
			if _, ok := f[name]; !ok {
				fp.errf(s.key, "connection: %s is missing; transport %s authenticates the device with a certificate and its private key (cert: and key: paths)", name, transportWord(c.Transport))
			}
		}
	}
	if p, ok := f["client_id"]; ok {
		if v, ok := fp.str(p.val, "client_id"); ok {
			switch {
			case v == "":
				fp.errf(p.val, "client_id is empty; leave it out to use the thing name")
			case len(v) > 128:
				fp.errf(p.val, "client_id is %d bytes long; AWS IoT allows at most 128", len(v))
			default:
				c.ClientID = v
			}
		}
	}
	if p, ok := f["keep_alive"]; ok {
		if d, ok := fp.duration(p.val, "keep_alive"); ok {
			if d < 30*time.Second || d > 1200*time.Second || d%time.Second != 0 {
				fp.errf(p.val, "keep_alive %v is out of range; allowed: whole seconds from 30s to 20m (AWS IoT's range)", d)
			} else {
				c.KeepAlive = d
			}
		}
	}
	for _, name := range []string{"region", "credentials"} {
		if p, ok := f[name]; ok && c.Transport != iot.TransportWSS {
			fp.errf(p.key, "%s is only used with transport wss (SigV4 signing), not %s; remove it", name, transportWord(c.Transport))
		}
	}
	if p, ok := f["region"]; ok {
		if v, ok := fp.str(p.val, "region"); ok {
			c.Region = v
		}
	}
	if p, ok := f["credentials"]; ok {
		c.Credentials = fp.credentials(p.val)
	} else {
		c.Credentials = Credentials{Source: "default"}
	}
	if p, ok := f["backoff"]; ok {
		c.Backoff = fp.backoff(p.val)
	} else {
		c.Backoff = iot.BackoffConfig{Base: time.Second, Max: 32 * time.Second, Stable: 20 * time.Second}
	}
	if p, ok := f["queue"]; ok {
		c.Queue = fp.queue(p.val)
	} else {
		c.Queue = iot.QueueConfig{Size: 100, DrainInterval: 100 * time.Millisecond}
	}
	if p, ok := f["discovery"]; ok {
		c.Discovery = fp.discovery(p, c)
	}
	return c
}

func transportWord(t iot.Transport) string {
	for w, v := range transports {
		if v == t {
			return w
		}
	}
	return t.String()
}

func (fp fileParser) credentials(n *yaml.Node) Credentials {
	c := Credentials{Source: "default"}
	for _, p := range fp.pairs(n, "credentials", []string{"source", "file", "profile"}) {
		switch p.name {
		case "source":
			if v, ok := fp.choice(p.val, "credentials source", []string{"default", "env", "file"}); ok {
				c.Source = v
			}
		case "file":
			c.File, _ = fp.str(p.val, "credentials file")
		case "profile":
			c.Profile, _ = fp.str(p.val, "credentials profile")
		}
	}
	return c
}

func (fp fileParser) backoff(n *yaml.Node) iot.BackoffConfig {
	b := iot.BackoffConfig{Base: time.Second, Max: 32 * time.Second, Stable: 20 * time.Second}
	f := map[string]kv{}
	for _, p := range fp.pairs(n, "backoff", []string{"base", "max", "stable", "jitter"}) {
		f[p.name] = p
		switch p.name {
		case "base", "max", "stable":
			if d, ok := fp.duration(p.val, "backoff "+p.name); ok {
				*map[string]*time.Duration{"base": &b.Base, "max": &b.Max, "stable": &b.Stable}[p.name] = d
			}
		case "jitter":
			if v, ok := fp.choice(p.val, "backoff jitter", []string{"none", "full", "equal"}); ok {
				b.Jitter, _ = iot.ParseJitter(v)
			}
		}
	}
	switch {
	case b.Base <= 0:
		fp.errf(f["base"].val, "backoff base must be more than 0, such as 1s")
	case b.Max < b.Base:
		fp.errf(valOr(f["max"], f["base"]), "backoff max %v is shorter than base %v; max must be at least base", b.Max, b.Base)
	case b.Stable <= b.Base:
		fp.errf(valOr(f["stable"], f["base"]), "backoff stable %v must be longer than base %v (the uptime after which the wait returns to base)", b.Stable, b.Base)
	}
	return b
}

func valOr(a, b kv) *yaml.Node {
	if a.val != nil {
		return a.val
	}
	return b.val
}

var drainRate = regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*(s|m|h)\s*$`)

func (fp fileParser) queue(n *yaml.Node) iot.QueueConfig {
	q := iot.QueueConfig{Size: 100, DrainInterval: 100 * time.Millisecond}
	for _, p := range fp.pairs(n, "queue", []string{"size", "drop", "path", "drain_rate", "disabled"}) {
		switch p.name {
		case "size":
			if v, ok := fp.integer(p.val, "queue size", 1, 1000000); ok {
				q.Size = v
			}
		case "drop":
			if v, ok := fp.choice(p.val, "queue drop", []string{"oldest", "newest"}); ok && v == "oldest" {
				q.Drop = iot.DropOldest
			}
		case "path":
			q.Path, _ = fp.str(p.val, "queue path")
		case "disabled":
			q.Disabled, _ = fp.boolean(p.val, "queue disabled")
		case "drain_rate":
			v, ok := fp.str(p.val, "queue drain_rate")
			if !ok {
				continue
			}
			m := drainRate.FindStringSubmatch(v)
			r, err := 0.0, error(nil)
			if m != nil {
				r, err = strconv.ParseFloat(m[1], 64)
			}
			if m == nil || err != nil || r <= 0 || r > 1000 {
				fp.errf(p.val, "queue drain_rate %q is not a rate; write messages per time unit, such as 10/s or 30/m (at most 1000/s)", v)
				continue
			}
			unit := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[m[2]]
			q.DrainInterval = time.Duration(float64(unit) / r)
		}
	}
	return q
}
