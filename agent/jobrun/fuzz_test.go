package jobrun

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// FuzzCheck feeds job documents (untrusted input from the cloud) to every
// built-in type: Check never panics, and refuses with ErrInvalid.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		`{"type":"set-desired","desired":{"heater":true}}`,
		`{"type":"pulse","key":"a.b","value":1,"seconds":0.5}`,
		`{"type":"run-handler","handler":"x","args":["a"],"timeout":"1m"}`,
		`{"type":"download-file","url":"https://h/f","name":"f","sha256":"` + strings.Repeat("a", 64) + `","max_size":5}`,
	} {
		f.Add([]byte(s))
	}
	types := map[string]Handler{
		"set-desired":   SetDesired{},
		"pulse":         Pulse{},
		"run-handler":   RunHandler{Opts: RunHandlerOptions{Dir: "/h", Timeout: time.Minute}},
		"download-file": Download{Opts: DownloadOptions{Dir: "/d"}},
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		typ, err := docType(doc)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("docType error %v does not wrap ErrInvalid", err)
			}
			return
		}
		for name, h := range types {
			if name != typ {
				continue
			}
			j, err := h.Check(json.RawMessage(doc))
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("%s: Check error %v does not wrap ErrInvalid", name, err)
			}
			if err == nil && j == nil {
				t.Fatalf("%s: no job and no error", name)
			}
			if err != nil {
				d := Details{"reason": err.Error()}.Clean()
				checkDetails(t, d)
			}
		}
	})
}

// FuzzDetails: whatever a handler puts in statusDetails comes out within
// AWS's limits.
func FuzzDetails(f *testing.F) {
	f.Add("key", "value\n\x1b[31mred")
	f.Add("k k/é", strings.Repeat("ü", 700))
	f.Fuzz(func(t *testing.T, k, v string) {
		d := Details{k: v}
		for i := 0; i < 12; i++ {
			d[fmt.Sprint("k", i)] = v
		}
		checkDetails(t, d.Clean())
		if tail := Tail(v, OutputTail); len(tail) > OutputTail || !utf8.ValidString(tail) {
			t.Fatalf("Tail: %d bytes, valid %v", len(tail), utf8.ValidString(tail))
		}
	})
}

func checkDetails(t *testing.T, d Details) {
	t.Helper()
	if len(d) > MaxDetails {
		t.Fatalf("%d entries", len(d))
	}
	for k, v := range d {
		if k == "" || len(k) > MaxDetailKey || cleanKey(k) != k {
			t.Fatalf("bad key %q", k)
		}
		if v == "" || len(v) > MaxDetailValue || !utf8.ValidString(v) {
			t.Fatalf("bad value for %q: %d bytes, valid %v", k, len(v), utf8.ValidString(v))
		}
		for _, r := range v {
			if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs) {
				t.Fatalf("control character %U in %q", r, v)
			}
		}
	}
}
