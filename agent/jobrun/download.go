package jobrun

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pinshadow/pinshadow/internal/atomicfile"
)

// DefaultMaxDownload is the largest download when the configuration sets
// no limit.
const DefaultMaxDownload = 100 << 20

// Default and largest time a download may take (its "timeout").
const (
	DefaultDownloadTimeout = 10 * time.Minute
	MaxDownloadTimeout     = 24 * time.Hour
)

// DownloadOptions configure the "download-file" job type.
type DownloadOptions struct {
	// Dir receives the files.
	Dir string
	// MaxSize is the largest file (default 100 MiB); a document may ask
	// for less.
	MaxSize int64
	// AllowHTTP allows plain http:// URLs to any host (otherwise only to
	// loopback addresses).
	AllowHTTP bool
	// Client fetches the file (default: a client without a timeout, bound
	// by the job's context).
	Client *http.Client
}

// Download is the "download-file" job type:
//
//	{"type": "download-file", "url": "https://example.com/fw.bin", "name": "fw.bin",
//	 "sha256": "<64 hex digits>", "max_size": 1048576, "timeout": "10m"}
//
// The file is fetched (https; http only to a loopback host unless allowed
// by the configuration, also after redirects) into a temporary file in the
// configured directory, its size bounded by max_size (at most the
// configured limit) and its SHA-256 checked, then fsynced and renamed to
// name (a plain file name inside the directory, replacing an older file).
// timeout bounds the whole transfer (default 10m, at most 24h; the step
// timer is kept alive meanwhile). A wrong checksum, a size over the limit,
// the timeout or any error is FAILED and leaves nothing behind.
type Download struct{ Opts DownloadOptions }

type downloadDoc struct {
	Type    string `json:"type"`
	URL     string `json:"url"`
	Name    string `json:"name"`
	SHA256  string `json:"sha256"`
	MaxSize any    `json:"max_size"`
	Timeout string `json:"timeout"`
}

// Check validates a download-file document.
func (dl Download) Check(doc json.RawMessage) (Job, error) {
	var d downloadDoc
	if err := decodeStrict(doc, &d, "download-file", "type, url, name, sha256, max_size, timeout"); err != nil {
		return nil, err
	}
	if d.URL == "" {
		return nil, fmt.Errorf(`%w: download-file: "url" is missing`, ErrInvalid)
	}
	u, err := url.Parse(d.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: download-file: url: %v", ErrInvalid, err)
	}
	if err := dl.allowURL(u); err != nil {
		return nil, fmt.Errorf("download-file: %w", err)
	}
	if err := checkName("name", d.Name); err != nil {
		return nil, fmt.Errorf("download-file: %w", err)
	}
	want, err := hex.DecodeString(strings.ToLower(d.SHA256))
	if err != nil || len(want) != sha256.Size {
		return nil, fmt.Errorf(`%w: download-file: sha256 %q: want 64 hex digits (sha256sum FILE)`, ErrInvalid, d.SHA256)
	}
	limit := dl.Opts.MaxSize
	if limit <= 0 {
		limit = DefaultMaxDownload
	}
	if d.MaxSize != nil {
		num, _ := d.MaxSize.(json.Number)
		n, err := strconv.ParseInt(num.String(), 10, 64)
		if err != nil || n <= 0 || n > limit {
			return nil, fmt.Errorf("%w: download-file: max_size %s: want a whole number of bytes from 1 to %d (the configured limit)", ErrInvalid, compact(d.MaxSize), limit)
		}
		limit = n
	}
	to, err := duration("timeout", d.Timeout, DefaultDownloadTimeout, time.Second, MaxDownloadTimeout)
	if err != nil {
		return nil, fmt.Errorf("download-file: %w", err)
	}
	return JobFunc(func(ctx context.Context, x *Exec) (Details, error) {
		// The whole transfer is bounded on the agent's clock: the keep-alive
		// holds the step open, so a stalled server must not hold it for ever.
		tctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		tc, stop := x.Clock.NewTimer(to)
		defer stop()
		go func() {
			select {
			case <-tc:
				cancel(fmt.Errorf("%w: timed out after %s", ErrDownload, to))
			case <-tctx.Done():
			}
		}()
		det, err := dl.fetch(tctx, x, u, d.Name, want, limit)
		if err != nil && ctx.Err() == nil && tctx.Err() != nil {
			err = context.Cause(tctx)
		}
		return det, err
	}), nil
}

// ErrDownload marks a download that failed for a reason the message gives.
var ErrDownload = errors.New("download failed")

func (dl Download) allowURL(u *url.URL) error {
	switch u.Scheme {
	case "https":
	case "http":
		if !dl.Opts.AllowHTTP && !loopback(u.Hostname()) {
			return fmt.Errorf("%w: url %s: plain http is allowed only to a loopback host; use https (or set jobs.downloads.allow_http)", ErrInvalid, u.Redacted())
		}
	default:
		return fmt.Errorf("%w: url %s: want an https:// URL", ErrInvalid, u.Redacted())
	}
	if u.Host == "" {
		return fmt.Errorf("%w: url %s has no host", ErrInvalid, u.Redacted())
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (dl Download) fetch(ctx context.Context, x *Exec, u *url.URL, name string, want []byte, limit int64) (Details, error) {
	if dl.Opts.Dir == "" {
		return nil, fmt.Errorf("%w: no download directory configured (jobs: downloads: dir)", ErrDownload)
	}
	if err := os.MkdirAll(dl.Opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDownload, err)
	}
	client := dl.Opts.Client
	if client == nil {
		client = &http.Client{}
	}
	c := *client
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("more than 10 redirects")
		}
		return dl.allowURL(req.URL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDownload, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrDownload, u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s: HTTP %s", ErrDownload, u.Redacted(), resp.Status)
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than the limit of %d", ErrDownload, u.Redacted(), resp.ContentLength, limit)
	}
	dst := filepath.Join(dl.Opts.Dir, name)
	tmp, err := atomicfile.Create(dst, 0o640)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDownload, err)
	}
	defer tmp.Abort() // nothing is kept unless the checksum matched
	var got atomic.Int64
	stopKA := x.KeepAlive(ctx, func() Details {
		return Details{"phase": "downloading", "bytes": strconv.FormatInt(got.Load(), 10)}
	})
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h, counter{&got}), io.LimitReader(resp.Body, limit+1))
	stopKA()
	if err != nil {
		return nil, fmt.Errorf("%w: %s after %d bytes: %w", ErrDownload, u.Redacted(), n, err)
	}
	if n > limit {
		return nil, fmt.Errorf("%w: %s is more than the limit of %d bytes", ErrDownload, u.Redacted(), limit)
	}
	sum := h.Sum(nil)
	det := Details{"name": name, "size": strconv.FormatInt(n, 10), "sha256": hex.EncodeToString(sum)}
	if !equalBytes(sum, want) {
		return det, fmt.Errorf("%w: sha256 mismatch: got %x, want %x; nothing was kept", ErrDownload, sum, want)
	}
	if err := tmp.Commit(); err != nil {
		return det, fmt.Errorf("%w: %w", ErrDownload, err)
	}
	det["path"] = dst
	return det, nil
}

type counter struct{ n *atomic.Int64 }

func (c counter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

func equalBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	var v byte
	for i := range a {
		v |= a[i] ^ b[i]
	}
	return v == 0
}
