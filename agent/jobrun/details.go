package jobrun

import (
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Details is a job execution's statusDetails. AWS allows string values
// only, keys of 1–128 characters of [a-zA-Z0-9:_-], values of 1–1024
// characters without control characters; Clean enforces that.
type Details map[string]string

// Limits of statusDetails (AWS IoT Jobs UpdateJobExecution).
const (
	MaxDetailKey   = 128
	MaxDetailValue = 1024
	MaxDetails     = 10
)

// Clean returns d fit for the service: keys with other characters have
// them replaced by '_' and are cut to MaxDetailKey; control, format and
// private-use characters in values are escaped (\n, \t, \r, \xNN, \uNNNN);
// values are cut to MaxDetailValue bytes on a UTF-8 boundary (Tail keeps
// the end instead); empty keys or values are dropped; beyond MaxDetails
// entries, "reason" is kept first, then keys in order. nil in, nil out.
func (d Details) Clean() Details {
	if d == nil {
		return nil
	}
	out := make(Details, len(d))
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if (keys[i] == "reason") != (keys[j] == "reason") {
			return keys[i] == "reason"
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		v := d[k]
		if len(out) == MaxDetails {
			break
		}
		k = cleanKey(k)
		if k == "" {
			continue
		}
		v = escapeControl(v)
		v = cutHead(v, MaxDetailValue)
		if v == "" {
			continue
		}
		out[k] = v
	}
	return out
}

// Merge returns a copy of d with e's entries added (e wins).
func (d Details) Merge(e Details) Details {
	out := make(Details, len(d)+len(e))
	for k, v := range d {
		out[k] = v
	}
	for k, v := range e {
		out[k] = v
	}
	return out
}

// String renders d as k=v pairs in key order, for logs.
func (d Details) String() string {
	ks := make([]string, 0, len(d))
	for k := range d {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var b strings.Builder
	for i, k := range ks {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "=" + d[k])
	}
	return b.String()
}

func cleanKey(k string) string {
	var b strings.Builder
	for _, r := range k {
		if b.Len() >= MaxDetailKey {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == ':', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// escapeControl makes a value printable on one line: invalid UTF-8 and
// control characters become escapes.
func escapeControl(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unusual(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			b.WriteString(`\x` + hex2(s[i]))
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x80 && unicode.IsControl(r):
			b.WriteString(`\x` + hex2(byte(r)))
		case unusual(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// unusual reports the characters AWS refuses in a statusDetails value
// (\p{C}: control, format, private use, surrogates).
func unusual(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs)
}

func hex2(c byte) string {
	const h = "0123456789abcdef"
	return string([]byte{h[c>>4], h[c&15]})
}

// cutHead keeps at most n bytes of s from its start, on a rune boundary.
func cutHead(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// Tail keeps at most n bytes of s from its end, on a rune boundary, after
// escaping control characters (so the result fits a statusDetails value
// of n bytes). A cut tail starts with "…".
func Tail(s string, n int) string {
	s = escapeControl(s)
	if len(s) <= n {
		return s
	}
	const mark = "…"
	i := len(s) - (n - len(mark))
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	// An escape such as \x1b must not be cut in half: skip to after it.
	if j := strings.LastIndexByte(s[max(0, i-5):i], '\\'); j >= 0 {
		j += max(0, i-5)
		if k := j + escLen(s[j:]); k > i && k <= len(s) {
			i = k
		}
	}
	return mark + s[i:]
}

func escLen(s string) int {
	if len(s) < 2 {
		return 1
	}
	switch s[1] {
	case 'x':
		return 4
	case 'u':
		n := 2
		for n < len(s) && n < 10 && strings.IndexByte("0123456789abcdef", s[n]) >= 0 {
			n++
		}
		return n
	case 'n', 't', 'r':
		return 2
	}
	return 1
}
