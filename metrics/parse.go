package metrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Samples maps a series, written as name{label="value",…} with labels in
// the order they appeared, to its value. Parse returns it.
type Samples map[string]float64

// Get returns the value of the series (ok false when absent).
func (s Samples) Get(series string) (float64, bool) {
	v, ok := s[series]
	return v, ok
}

// Parse reads the text exposition format 0.0.4 strictly, the way WriteText
// writes it, and returns every sample. It is the check the tests use (here, in
// agent, localcloud and cmd/agent) and a fuzz target: every family has HELP then TYPE before its
// samples, sample names belong to the family (histograms: _bucket with le,
// _sum, _count), label names and values are well formed and escaped, values
// parse, histogram buckets are cumulative, end with le="+Inf" and equal
// _count, and no series appears twice.
func Parse(r io.Reader) (Samples, error) {
	out := Samples{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var (
		cur      string // current family
		kind     Kind
		helpSeen = map[string]bool{}
		typeSeen = map[string]bool{}
		lastLE   = map[string]float64{} // histogram series (without le) → last bucket count
		infSeen  = map[string]float64{}
		line     int
	)
	bad := func(format string, a ...any) error {
		return fmt.Errorf("metrics: line %d: %s", line, fmt.Sprintf(format, a...))
	}
	for sc.Scan() {
		line++
		t := sc.Text()
		if t == "" {
			return nil, bad("empty line")
		}
		if strings.HasPrefix(t, "#") {
			f := strings.SplitN(t, " ", 4)
			if len(f) < 3 || f[0] != "#" || (f[1] != "HELP" && f[1] != "TYPE") {
				return nil, bad("comment is not # HELP or # TYPE: %q", t)
			}
			name := f[2]
			if !nameRE.MatchString(name) {
				return nil, bad("invalid metric name %q", name)
			}
			if f[1] == "HELP" {
				if helpSeen[name] {
					return nil, bad("second HELP for %s", name)
				}
				helpSeen[name] = true
				cur, kind = name, ""
				continue
			}
			if name != cur || typeSeen[name] {
				return nil, bad("TYPE for %s must follow its HELP, once", name)
			}
			if len(f) != 4 {
				return nil, bad("TYPE line without a type: %q", t)
			}
			switch Kind(f[3]) {
			case KindCounter, KindGauge, KindHistogram:
				kind = Kind(f[3])
			default:
				return nil, bad("unknown type %q", f[3])
			}
			typeSeen[name] = true
			continue
		}
		if kind == "" {
			return nil, bad("sample before the HELP and TYPE of its family: %q", t)
		}
		name, labels, value, err := parseSample(t)
		if err != nil {
			return nil, bad("%v", err)
		}
		suffix, ok := strings.CutPrefix(name, cur)
		if !ok || (suffix != "" && kind != KindHistogram) {
			return nil, bad("sample %s outside its family %s", name, cur)
		}
		key := name
		if len(labels) > 0 {
			key += "{" + joinLabels(labels, "") + "}"
		}
		if _, dup := out[key]; dup {
			return nil, bad("series %s appears twice", key)
		}
		out[key] = value
		if kind == KindCounter && (value < 0 || math.IsNaN(value)) {
			return nil, bad("counter %s is %v", key, value)
		}
		if kind != KindHistogram {
			continue
		}
		base := joinLabels(labels, "le")
		switch suffix {
		case "_bucket":
			le, ok := labelValue(labels, "le")
			if !ok {
				return nil, bad("bucket %s without le", key)
			}
			if le == "+Inf" {
				infSeen[base] = value
			} else if _, err := strconv.ParseFloat(le, 64); err != nil {
				return nil, bad("bucket le %q is not a number", le)
			}
			if _, done := infSeen[base]; done && le != "+Inf" {
				return nil, bad("bucket after le=\"+Inf\" in %s", key)
			}
			if value < lastLE[base] || value != math.Trunc(value) {
				return nil, bad("bucket %s = %v: buckets must be cumulative counts", key, value)
			}
			lastLE[base] = value
		case "_sum":
		case "_count":
			inf, ok := infSeen[base]
			if !ok {
				return nil, bad("%s without a le=\"+Inf\" bucket before it", key)
			}
			if inf != value {
				return nil, bad("%s = %v but its +Inf bucket is %v", key, value, inf)
			}
		default:
			return nil, bad("histogram sample %s: want _bucket, _sum or _count", name)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics: reading exposition: %w", err)
	}
	for name := range helpSeen {
		if !typeSeen[name] {
			return nil, fmt.Errorf("metrics: %s has HELP but no TYPE", name)
		}
	}
	return out, nil
}

type label struct{ name, value string }

func joinLabels(ls []label, skip string) string {
	var b strings.Builder
	for _, l := range ls {
		if l.name == skip {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l.name + `="` + escapeLabel(l.value) + `"`)
	}
	return b.String()
}

func labelValue(ls []label, name string) (string, bool) {
	for _, l := range ls {
		if l.name == name {
			return l.value, true
		}
	}
	return "", false
}

// parseSample splits `name{a="x",b="y"} value` (no timestamps: WriteText
// writes none).
func parseSample(t string) (string, []label, float64, error) {
	i := strings.IndexAny(t, "{ ")
	if i <= 0 {
		return "", nil, 0, fmt.Errorf("sample without a value: %q", t)
	}
	name, rest := t[:i], t[i:]
	if !nameRE.MatchString(name) {
		return "", nil, 0, fmt.Errorf("invalid metric name %q", name)
	}
	var labels []label
	if rest[0] == '{' {
		rest = rest[1:]
		seen := map[string]bool{}
		for {
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			if len(labels) > 0 {
				if !strings.HasPrefix(rest, ",") {
					return "", nil, 0, fmt.Errorf("labels of %s: want , or }", name)
				}
				rest = rest[1:]
			}
			eq := strings.Index(rest, `="`)
			if eq <= 0 || !labelRE.MatchString(rest[:eq]) {
				return "", nil, 0, fmt.Errorf("labels of %s: bad label name in %q", name, rest)
			}
			ln := rest[:eq]
			if seen[ln] {
				return "", nil, 0, fmt.Errorf("labels of %s: %s twice", name, ln)
			}
			seen[ln] = true
			rest = rest[eq+2:]
			var v strings.Builder
			closed := false
			for j := 0; j < len(rest); j++ {
				c := rest[j]
				if c == '\\' {
					if j+1 >= len(rest) {
						break
					}
					switch rest[j+1] {
					case '\\':
						v.WriteByte('\\')
					case '"':
						v.WriteByte('"')
					case 'n':
						v.WriteByte('\n')
					default:
						return "", nil, 0, fmt.Errorf("labels of %s: bad escape \\%c", name, rest[j+1])
					}
					j++
					continue
				}
				if c == '"' {
					rest, closed = rest[j+1:], true
					break
				}
				if c == '\n' {
					break
				}
				v.WriteByte(c)
			}
			if !closed {
				return "", nil, 0, fmt.Errorf("labels of %s: unterminated value", name)
			}
			labels = append(labels, label{ln, v.String()})
		}
	}
	if !strings.HasPrefix(rest, " ") || strings.Contains(rest[1:], " ") {
		return "", nil, 0, fmt.Errorf("sample %s: want exactly one space then the value, got %q", name, rest)
	}
	v, err := parseValue(rest[1:])
	if err != nil {
		return "", nil, 0, fmt.Errorf("sample %s: %w", name, err)
	}
	return name, labels, v, nil
}

func parseValue(s string) (float64, error) {
	switch s {
	case "+Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || strings.ContainsAny(s, "_xXpP") || strings.EqualFold(s, "inf") || strings.EqualFold(s, "infinity") {
		return 0, fmt.Errorf("value %q is not a float", s)
	}
	return v, nil
}
