package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pinshadow/pinshadow/board"
	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/devices/builtin"
)

// Options are the inputs Parse needs besides the file name. Tests give
// ReadFile and LookupEnv so no real file or environment is touched.
type Options struct {
	// ReadFile reads a configuration file (the one named and every
	// include); nil means os.ReadFile.
	ReadFile func(name string) ([]byte, error)
	// LookupEnv resolves ${VAR}; nil means os.LookupEnv.
	LookupEnv func(name string) (string, bool)
	// Registry holds the drivers devices may name; nil means every
	// built-in driver.
	Registry *devices.Registry
	// Board, if set, replaces the configuration's board (agent validate
	// --board).
	Board string
	// Detect chooses the board when the configuration says auto (or says
	// nothing). nil means the generic profile: pure callers and tests name
	// a board instead.
	Detect func() board.Detection
}

// ErrRead is wrapped by the error Parse returns when the configuration
// file itself cannot be read (not a problem in its content).
var ErrRead = errors.New("config: cannot read the configuration file")

// Load reads the configuration at path from disk, with the process
// environment and the board detected from the device tree when it says
// auto. Problems in the content come back as Errors.
func Load(path string) (*Config, error) {
	return Parse(path, Options{
		ReadFile:  os.ReadFile,
		LookupEnv: os.LookupEnv,
		Detect:    func() board.Detection { return board.Detect("") },
	})
}

// Parse reads and validates the configuration named name. It returns
// every problem at once, as Errors sorted by file and line; an unreadable
// top-level file gives an error wrapping ErrRead instead.
func Parse(name string, o Options) (*Config, error) {
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.Registry == nil {
		o.Registry = builtin.NewRegistry()
	}
	l := &loader{opts: o, fileOrder: map[string]int{}, singles: map[string]src{}, envFailed: map[*yaml.Node]bool{}}
	if err := l.readFile(name, nil); err != nil {
		return nil, err
	}
	cfg := l.build()
	if len(l.probs) > 0 {
		return nil, l.probs.sort(l.fileOrder)
	}
	return cfg, nil
}

// src is a value and where it came from.
type src struct {
	file     string
	key, val *yaml.Node
}

func (s src) pos() Position { return posOf(s.file, s.val) }

type loader struct {
	opts      Options
	probs     Errors
	files     []string
	fileOrder map[string]int
	stack     []string

	singles map[string]src // thing, board, state_dir, connection, jobs
	devices []src          // each sequence item, in reading order
	shadows []src
	// hasShadows: a shadows: key was seen (an empty list is allowed).
	hasShadows bool
	// syntaxErr: some file did not parse or is not a mapping; "missing"
	// checks would only add noise.
	syntaxErr bool
	// envFailed holds values whose ${VAR} could not be expanded: they
	// are reported once, not again as invalid values.
	envFailed map[*yaml.Node]bool
}

func posOf(file string, n *yaml.Node) Position {
	if n == nil {
		return Position{File: file, Line: 1, Col: 1}
	}
	line, col := n.Line, n.Column
	if line == 0 {
		line = 1
	}
	return Position{File: file, Line: line, Col: col}
}

func (l *loader) problem(pos Position, format string, args ...any) {
	l.probs = append(l.probs, Problem{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (l *loader) errf(file string, n *yaml.Node, format string, args ...any) {
	l.problem(posOf(file, n), format, args...)
}

// topKeys are the keys a configuration file may have.
var topKeys = []string{"include", "thing", "board", "state_dir", "connection", "devices", "shadows", "jobs"}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// readFile reads one file and what it includes. from is the include entry
// that named it (nil for the top-level file).
func (l *loader) readFile(name string, from *src) error {
	for i, s := range l.stack {
		if s == name {
			cycle := append(append([]string{}, l.stack[i:]...), name)
			l.problem(from.pos(), "include cycle: %s; remove one of these includes", strings.Join(cycle, " → "))
			return nil
		}
	}
	if _, seen := l.fileOrder[name]; seen {
		l.problem(from.pos(), "%s is included twice; include each file once (its devices and shadows would be defined twice)", name)
		return nil
	}
	b, err := l.opts.ReadFile(name)
	if err != nil {
		if from == nil {
			return fmt.Errorf("%w %s: %w", ErrRead, name, err)
		}
		why := err.Error()
		if errors.Is(err, fs.ErrNotExist) {
			why = "no such file"
		}
		l.problem(from.pos(), "cannot include %s: %s; include paths are relative to the including file", name, why)
		return nil
	}
	l.fileOrder[name] = len(l.files)
	l.files = append(l.files, name)
	l.stack = append(l.stack, name)
	defer func() { l.stack = l.stack[:len(l.stack)-1] }()

	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		line := 1
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			if n, err := strconv.Atoi(m[1]); err == nil && n > 0 {
				line = n
			}
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		msg = yamlLine.ReplaceAllString(msg, "")
		msg = strings.TrimLeft(msg, ": ")
		l.syntaxErr = true
		l.problem(Position{File: name, Line: line}, "YAML syntax error at or below this line: %s; check the indentation and quoting", msg)
		return nil
	}
	if len(doc.Content) == 0 {
		return nil // empty file
	}
	root := doc.Content[0]
	l.expandEnv(name, root, 0)
	if root.Kind != yaml.MappingNode {
		l.errf(name, root, "the file must be a mapping of sections (%s), not a %s", strings.Join(topKeys, ", "), kindName(root))
		l.syntaxErr = true
		return nil
	}
	fp := l.file(name)
	for _, kv := range fp.pairs(root, "the top level", topKeys) {
		switch kv.name {
		case "include":
			l.includes(fp, kv.val)
		case "devices", "shadows":
			if kv.name == "shadows" {
				l.hasShadows = true
			}
			seq := deref(kv.val)
			if isNull(seq) {
				continue
			}
			if seq.Kind != yaml.SequenceNode {
				fp.errf(kv.val, "%s must be a list (one \"- \" entry per item), not a %s", kv.name, kindName(seq))
				continue
			}
			for _, it := range seq.Content {
				s := src{file: name, key: kv.key, val: it}
				if kv.name == "devices" {
					l.devices = append(l.devices, s)
				} else {
					l.shadows = append(l.shadows, s)
				}
			}
		default:
			if prev, ok := l.singles[kv.name]; ok {
				fp.errf(kv.key, "%s is already set at %s; set it in one file only", kv.name, posOf(prev.file, prev.key))
				continue
			}
			l.singles[kv.name] = src{file: name, key: kv.key, val: kv.val}
		}
	}
	return nil
}

func (l *loader) includes(fp fileParser, v *yaml.Node) {
	n := deref(v)
	var items []*yaml.Node
	switch n.Kind {
	case yaml.ScalarNode:
		items = []*yaml.Node{n}
	case yaml.SequenceNode:
		items = n.Content
	default:
		fp.errf(v, "include must be a file name or a list of file names, not a %s", kindName(n))
		return
	}
	dir := filepath.Dir(fp.file)
	for _, it := range items {
		s, ok := fp.str(it, "include")
		if !ok {
			continue
		}
		if s == "" {
			fp.errf(it, "include: empty file name; name a YAML file relative to %s", fp.file)
			continue
		}
		p := s
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		from := src{file: fp.file, val: it}
		_ = l.readFile(p, &from) // never fails for includes: problems are recorded
	}
}

// fileParser reads values of one file, recording problems with its name.
type fileParser struct {
	*loader
	file string
}

func (l *loader) file(name string) fileParser { return fileParser{loader: l, file: name} }

func (fp fileParser) errf(n *yaml.Node, format string, args ...any) {
	fp.loader.errf(fp.file, n, format, args...)
}

func (fp fileParser) src(key, val *yaml.Node) src { return src{file: fp.file, key: key, val: val} }

// envMaxDepth bounds the recursion over hostile documents.
const envMaxDepth = 64

// expandEnv replaces ${VAR} and ${VAR:-default} in every scalar value
// (not in keys); "$${" writes a literal "${".
func (l *loader) expandEnv(file string, n *yaml.Node, depth int) {
	if n == nil || depth > envMaxDepth {
		return
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		out, err := expand(n.Value, l.opts.LookupEnv)
		if err != "" {
			l.errf(file, n, "%s", err)
			l.envFailed[n] = true
			return
		}
		if out != n.Value {
			n.Value = out
			if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
				// An unquoted ${PORT} is read as what it expands to (a
				// number stays a number).
				n.Tag = ""
			}
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			l.expandEnv(file, n.Content[i], depth+1)
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			l.expandEnv(file, c, depth+1)
		}
	}
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expand substitutes environment variables in s; the second result is a
// message when a variable is unset or the syntax is wrong.
func expand(s string, lookup func(string) (string, bool)) (string, string) {
	var b strings.Builder
	for {
		i := strings.Index(s, "$")
		if i < 0 {
			b.WriteString(s)
			return b.String(), ""
		}
		b.WriteString(s[:i])
		s = s[i:]
		switch {
		case strings.HasPrefix(s, "$${"):
			b.WriteString("${")
			s = s[3:]
			continue
		case !strings.HasPrefix(s, "${"):
			b.WriteString("$")
			s = s[1:]
			continue
		}
		end := strings.Index(s, "}")
		if end < 0 {
			return "", fmt.Sprintf("unterminated %q: write ${NAME} or ${NAME:-default} (or $${ for a literal ${)", s)
		}
		expr := s[2:end]
		s = s[end+1:]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !envName.MatchString(name) {
			return "", fmt.Sprintf("${%s}: %q is not a variable name; use letters, digits and _ (not starting with a digit)", expr, name)
		}
		v, ok := lookup(name)
		switch {
		case ok && v != "":
			b.WriteString(v)
		case hasDef:
			b.WriteString(def)
		case ok:
			b.WriteString(v) // set but empty, no default: the user chose ""
		default:
			return "", fmt.Sprintf("environment variable %s is not set; set it or give a default as ${%s:-value}", name, name)
		}
	}
}
