package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Jobs is the jobs: section: whether and how the agent runs AWS IoT Jobs
// executions. Without the section (Config.Jobs nil) the agent does not
// subscribe to the Jobs topics at all.
type Jobs struct {
	// Enabled is false only when the section says enabled: false.
	Enabled bool
	// StepTimeout is sent with every start and progress update and bounds
	// a job step (default 10m; 1m–168h, rounded up to whole minutes by the
	// service).
	StepTimeout time.Duration
	// Handlers configures the run-handler job type; Dir "" turns it off.
	Handlers JobHandlers
	// Downloads configures the download-file job type; Dir "" turns it off.
	Downloads JobDownloads
	// ApplyConfig and Reboot configure the apply-config and reboot types
	// (wired by `agent run`), each on only when its key is present
	// (`apply_config: {}` takes the defaults).
	ApplyConfig JobApplyConfig
	Reboot      JobReboot
	// Pos is where the section starts.
	Pos Position
}

// JobHandlers configures run-handler.
type JobHandlers struct {
	// Dir holds the allow-listed executables (absolute path).
	Dir string
	// User runs them ("" = the agent's own user; another user needs the
	// agent to run as root).
	User string
	// Timeout is a job's default (5m); MaxTimeout the most a job document
	// may ask for (default Timeout).
	Timeout, MaxTimeout time.Duration
}

// JobDownloads configures download-file.
type JobDownloads struct {
	// Dir receives downloaded files (absolute path).
	Dir string
	// MaxSize is the largest file in bytes (default 100 MiB).
	MaxSize int64
	// AllowHTTP allows plain http:// to any host (default: loopback only).
	AllowHTTP bool
}

// JobApplyConfig configures apply-config.
type JobApplyConfig struct {
	// Enabled is true when the section has an apply_config key: a job that
	// replaces the configuration is never on by default.
	Enabled bool
	// VerifyTimeout bounds the new configuration's convergence (0: the
	// type's default).
	VerifyTimeout time.Duration
}

// JobReboot configures reboot.
type JobReboot struct {
	// Enabled is true when the section has a reboot key: a job that
	// reboots the device is never on by default.
	Enabled bool
	// Command is the reboot command as argv (nil: the type's default,
	// systemctl reboot).
	Command []string
	// Timeout is how long the device may take to come back (0: default).
	Timeout time.Duration
}

// Defaults of the jobs: section.
const (
	DefaultStepTimeout    = 10 * time.Minute
	DefaultHandlerTimeout = 5 * time.Minute
	DefaultMaxDownload    = 100 << 20
)

var (
	jobsKeys      = []string{"enabled", "step_timeout", "handlers", "downloads", "apply_config", "reboot"}
	handlerKeys   = []string{"dir", "user", "timeout", "max_timeout"}
	downloadKeys  = []string{"dir", "max_size", "allow_http"}
	userPattern   = regexp.MustCompile(`^[a-z_][a-z0-9_-]*\$?$`)
	sizePattern   = regexp.MustCompile(`^([0-9]+)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$`)
	sizeMultiples = map[string]int64{"": 1, "B": 1, "KB": 1000, "MB": 1000 * 1000, "GB": 1000 * 1000 * 1000,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
)

// jobs parses the jobs: section.
func (fp fileParser) jobs(s src) *Jobs {
	j := &Jobs{Enabled: true, StepTimeout: DefaultStepTimeout, Pos: posOf(s.file, s.key),
		Handlers:  JobHandlers{Timeout: DefaultHandlerTimeout},
		Downloads: JobDownloads{MaxSize: DefaultMaxDownload}}
	var maxSet bool
	for _, p := range fp.pairs(s.val, "jobs", jobsKeys) {
		switch p.name {
		case "enabled":
			if v, ok := fp.boolean(p.val, "jobs enabled"); ok {
				j.Enabled = v
			}
		case "step_timeout":
			if d, ok := fp.duration(p.val, "jobs step_timeout"); ok {
				if d < time.Minute || d > 168*time.Hour {
					fp.errf(p.val, "jobs step_timeout %v is out of range; AWS IoT Jobs allows 1m to 168h", d)
				} else {
					j.StepTimeout = d
				}
			}
		case "handlers":
			for _, h := range fp.pairs(p.val, "jobs handlers", handlerKeys) {
				switch h.name {
				case "dir":
					j.Handlers.Dir = fp.absDir(h.val, "jobs handlers dir")
				case "user":
					if v, ok := fp.str(h.val, "jobs handlers user"); ok {
						if !userPattern.MatchString(v) || len(v) > 32 {
							fp.errf(h.val, "jobs handlers user %q is not a user name; give an account name such as pinshadow", v)
						} else {
							j.Handlers.User = v
						}
					}
				case "timeout", "max_timeout":
					if d, ok := fp.duration(h.val, "jobs handlers "+h.name); ok {
						if d < time.Second || d > 24*time.Hour {
							fp.errf(h.val, "jobs handlers %s %v is out of range; allowed: 1s to 24h", h.name, d)
						} else if h.name == "timeout" {
							j.Handlers.Timeout = d
						} else {
							j.Handlers.MaxTimeout, maxSet = d, true
						}
					}
				}
			}
		case "apply_config":
			j.ApplyConfig.Enabled = true
			for _, a := range fp.pairs(p.val, "jobs apply_config", []string{"verify_timeout"}) {
				if d, ok := fp.duration(a.val, "jobs apply_config verify_timeout"); ok {
					if d < time.Second || d > time.Hour {
						fp.errf(a.val, "jobs apply_config verify_timeout %v is out of range; allowed: 1s to 1h", d)
					} else {
						j.ApplyConfig.VerifyTimeout = d
					}
				}
			}
		case "reboot":
			j.Reboot.Enabled = true
			for _, r := range fp.pairs(p.val, "jobs reboot", []string{"command", "timeout"}) {
				switch r.name {
				case "command":
					j.Reboot.Command = fp.argv(r.val, "jobs reboot command")
				case "timeout":
					if d, ok := fp.duration(r.val, "jobs reboot timeout"); ok {
						if d < 10*time.Second || d > 24*time.Hour {
							fp.errf(r.val, "jobs reboot timeout %v is out of range; allowed: 10s to 24h", d)
						} else {
							j.Reboot.Timeout = d
						}
					}
				}
			}
		case "downloads":
			for _, d := range fp.pairs(p.val, "jobs downloads", downloadKeys) {
				switch d.name {
				case "dir":
					j.Downloads.Dir = fp.absDir(d.val, "jobs downloads dir")
				case "max_size":
					if n, ok := fp.size(d.val, "jobs downloads max_size"); ok {
						j.Downloads.MaxSize = n
					}
				case "allow_http":
					if v, ok := fp.boolean(d.val, "jobs downloads allow_http"); ok {
						j.Downloads.AllowHTTP = v
					}
				}
			}
		}
	}
	if !maxSet {
		j.Handlers.MaxTimeout = j.Handlers.Timeout
	} else if j.Handlers.MaxTimeout < j.Handlers.Timeout {
		fp.errf(s.key, "jobs handlers max_timeout %v is shorter than timeout %v; max_timeout must be at least timeout", j.Handlers.MaxTimeout, j.Handlers.Timeout)
	}
	if j.Handlers.Dir != "" && j.Downloads.Dir != "" && filepath.Clean(j.Handlers.Dir) == filepath.Clean(j.Downloads.Dir) {
		fp.errf(s.key, "jobs downloads dir and handlers dir are both %s; a download must never become an allow-listed handler, use two directories", j.Handlers.Dir)
	}
	return j
}

func (fp fileParser) absDir(n *yaml.Node, what string) string {
	v, ok := fp.str(n, what)
	if !ok {
		return ""
	}
	if v == "" || !filepath.IsAbs(v) {
		fp.errf(n, "%s %q must be an absolute directory path, such as /etc/pinshadow/handlers", what, v)
		return ""
	}
	return filepath.Clean(v)
}

// argv reads a command as a list of strings (no shell).
func (fp fileParser) argv(n *yaml.Node, what string) []string {
	m := deref(n)
	if m == nil || m.Kind != yaml.SequenceNode || len(m.Content) == 0 {
		fp.errf(n, "%s must be a non-empty list of strings (argv, no shell), such as [systemctl, reboot]", what)
		return nil
	}
	var out []string
	for _, it := range m.Content {
		s, ok := fp.str(it, what)
		if !ok {
			return nil
		}
		out = append(out, s)
	}
	if out[0] == "" {
		fp.errf(m.Content[0], "%s: the program name is empty", what)
		return nil
	}
	return out
}

// size reads a byte count: a whole number, optionally with a unit (B, KB,
// MB, GB, KiB, MiB, GiB).
func (fp fileParser) size(n *yaml.Node, what string) (int64, bool) {
	s, ok := fp.scalar(n, what)
	if !ok {
		return 0, false
	}
	m := sizePattern.FindStringSubmatch(strings.TrimSpace(s.Value))
	if m == nil {
		fp.errf(n, "%s %q: want a size such as 10MiB, 500KB or 1048576 (bytes)", what, s.Value)
		return 0, false
	}
	v, err := strconv.ParseInt(m[1], 10, 64)
	mul := sizeMultiples[m[2]]
	if err != nil || v <= 0 || v > (1<<40)/mul {
		fp.errf(n, "%s %q is out of range; allowed: 1 byte to 1TiB", what, s.Value)
		return 0, false
	}
	return v * mul, true
}

// String describes the section in one line, for agent validate and plan.
func (j *Jobs) String() string {
	if j == nil || !j.Enabled {
		return "jobs: off"
	}
	types := []string{"set-desired", "pulse"}
	if j.Handlers.Dir != "" {
		types = append(types, "run-handler")
	}
	if j.Downloads.Dir != "" {
		types = append(types, "download-file")
	}
	if j.ApplyConfig.Enabled {
		types = append(types, "apply-config")
	}
	if j.Reboot.Enabled {
		types = append(types, "reboot")
	}
	s := fmt.Sprintf("jobs: %s; step timeout %v", strings.Join(types, ", "), j.StepTimeout)
	if j.Handlers.Dir != "" {
		who := j.Handlers.User
		if who == "" {
			who = "the agent's user"
		}
		s += fmt.Sprintf("; handlers from %s as %s (timeout %v, at most %v)", j.Handlers.Dir, who, j.Handlers.Timeout, j.Handlers.MaxTimeout)
	}
	if j.Downloads.Dir != "" {
		s += fmt.Sprintf("; downloads to %s (at most %d bytes", j.Downloads.Dir, j.Downloads.MaxSize)
		if j.Downloads.AllowHTTP {
			s += ", http allowed"
		}
		s += ")"
	}
	return s
}
