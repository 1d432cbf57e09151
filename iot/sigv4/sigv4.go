// Package sigv4 presigns URLs with AWS Signature Version 4 (query-string
// authentication) using only the standard library, and finds AWS credentials
// the way the AWS SDKs do: static values, the standard environment variables,
// or the shared credentials file (~/.aws/credentials).
//
// It exists so the MQTT-over-WebSocket transport of package iot can sign a
// fresh wss://<endpoint>/mqtt URL at every (re)connect without depending on
// the AWS SDK. The signer is generic over method, host, path, service,
// region, expiry and payload hash, so it reproduces AWS's published S3
// presigned-URL example as well as AWS IoT's WebSocket URLs.
package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Algorithm is the SigV4 signing algorithm name.
const Algorithm = "AWS4-HMAC-SHA256"

// EmptyPayloadHash is the hex SHA-256 of an empty body, the payload hash used
// for AWS IoT WebSocket URLs.
const EmptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// UnsignedPayload is the payload hash S3 presigned URLs use.
const UnsignedPayload = "UNSIGNED-PAYLOAD"

// IoTService is the SigV4 service name for the AWS IoT device gateway
// (MQTT over WebSocket).
const IoTService = "iotdevicegateway"

// timeFormat is the SigV4 X-Amz-Date layout.
const timeFormat = "20060102T150405Z"

// ErrNoCredentials reports that no access key id / secret key was available.
var ErrNoCredentials = errors.New("sigv4: no AWS credentials")

// Credentials are an AWS access key pair and an optional session token
// (temporary STS credentials).
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// Source names where the credentials came from (for messages only).
	Source string
}

// Valid reports whether both key id and secret are set.
func (c Credentials) Valid() bool { return c.AccessKeyID != "" && c.SecretAccessKey != "" }

// Request describes the URL to presign.
type Request struct {
	Method string // HTTP method; "" means GET
	Scheme string // URL scheme of the result, e.g. "https" or "wss"
	// Host is the value of the HTTP Host header the server will see, i.e.
	// host name plus ":port" only when the port is not the scheme's default.
	Host    string
	Path    string     // absolute path, e.g. "/mqtt"; "" means "/"
	Query   url.Values // extra query parameters to sign (may be nil)
	Service string     // e.g. "s3" or IoTService
	Region  string     // e.g. "us-east-1"
	Time    time.Time  // signing time (converted to UTC)
	// Expires is X-Amz-Expires; 0 leaves the parameter out.
	Expires time.Duration
	// PayloadHash is the hex SHA-256 of the body, UnsignedPayload, or ""
	// for EmptyPayloadHash.
	PayloadHash string
	// SignSessionToken puts X-Amz-Security-Token into the signed query
	// (what S3 expects). When false the token is appended after signing,
	// which AWS IoT requires for WebSocket connections.
	SignSessionToken bool
}

// Presign returns the presigned URL for r signed with creds.
func Presign(r Request, creds Credentials) (*url.URL, error) {
	if !creds.Valid() {
		return nil, fmt.Errorf("%w: access key id and secret access key are both required", ErrNoCredentials)
	}
	switch {
	case r.Host == "":
		return nil, errors.New("sigv4: request host is empty")
	case r.Service == "":
		return nil, errors.New("sigv4: service is empty")
	case r.Region == "":
		return nil, errors.New("sigv4: region is empty (set it explicitly or via AWS_REGION)")
	case r.Time.IsZero():
		return nil, errors.New("sigv4: signing time is zero")
	}
	method := r.Method
	if method == "" {
		method = "GET"
	}
	path := r.Path
	if path == "" {
		path = "/"
	}
	payload := r.PayloadHash
	if payload == "" {
		payload = EmptyPayloadHash
	}
	t := r.Time.UTC()
	amzDate := t.Format(timeFormat)
	day := t.Format("20060102")
	scope := day + "/" + r.Region + "/" + r.Service + "/aws4_request"

	q := url.Values{}
	for k, vs := range r.Query {
		q[k] = append([]string(nil), vs...)
	}
	q.Set("X-Amz-Algorithm", Algorithm)
	q.Set("X-Amz-Credential", creds.AccessKeyID+"/"+scope)
	q.Set("X-Amz-Date", amzDate)
	if r.Expires > 0 {
		q.Set("X-Amz-Expires", strconv.FormatInt(int64(r.Expires/time.Second), 10))
	}
	q.Set("X-Amz-SignedHeaders", "host")
	if r.SignSessionToken && creds.SessionToken != "" {
		q.Set("X-Amz-Security-Token", creds.SessionToken)
	}
	canonicalQuery := CanonicalQuery(q)

	canonicalRequest := strings.Join([]string{
		method,
		escapePath(path),
		canonicalQuery,
		"host:" + strings.ToLower(strings.TrimSpace(r.Host)) + "\n",
		"host",
		payload,
	}, "\n")
	stringToSign := strings.Join([]string{Algorithm, amzDate, scope, hexSHA256(canonicalRequest)}, "\n")
	key := SigningKey(creds.SecretAccessKey, day, r.Region, r.Service)
	signature := hex.EncodeToString(hmacSHA256(key, stringToSign))

	raw := canonicalQuery + "&X-Amz-Signature=" + signature
	if !r.SignSessionToken && creds.SessionToken != "" {
		raw += "&X-Amz-Security-Token=" + Escape(creds.SessionToken)
	}
	return &url.URL{Scheme: r.Scheme, Host: r.Host, Path: path, RawQuery: raw}, nil
}

// SigningKey derives the SigV4 signing key for a day (YYYYMMDD), region and
// service.
func SigningKey(secret, day, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), day)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, "aws4_request")
}

// CanonicalQuery encodes q the SigV4 way: keys sorted, then values, every
// key and value escaped with Escape.
func CanonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			parts = append(parts, Escape(k)+"="+Escape(v))
		}
	}
	return strings.Join(parts, "&")
}

// Escape percent-encodes s as SigV4 requires: every byte except the RFC 3986
// unreserved characters A-Z a-z 0-9 - _ . ~ becomes %XX (upper-case hex).
func Escape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('A' <= c && c <= 'Z') || ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// escapePath escapes each path segment, keeping the slashes.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = Escape(s)
	}
	return strings.Join(segs, "/")
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

func hexSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// IoTWebSocketURL returns the presigned wss URL for AWS IoT MQTT over
// WebSocket: GET <scheme>://<host>/mqtt signed for service iotdevicegateway
// with the empty-payload hash, valid for expires (86400 s if 0). The session
// token, if any, is appended after signing, as AWS IoT requires. scheme is
// "wss" in production ("ws" only for local tests).
func IoTWebSocketURL(scheme, host, region string, creds Credentials, t time.Time, expires time.Duration) (*url.URL, error) {
	if expires == 0 {
		expires = 24 * time.Hour
	}
	return Presign(Request{
		Scheme:  scheme,
		Host:    host,
		Path:    "/mqtt",
		Service: IoTService,
		Region:  region,
		Time:    t,
		Expires: expires,
	}, creds)
}

// RegionFromIoTEndpoint extracts the region from an AWS IoT data endpoint
// such as "abc123-ats.iot.eu-west-1.amazonaws.com" (also ".amazonaws.com.cn").
// It returns "" when host does not look like an AWS IoT endpoint.
func RegionFromIoTEndpoint(host string) string {
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	labels := strings.Split(strings.ToLower(host), ".")
	for i := 0; i+2 < len(labels); i++ {
		if labels[i] == "iot" && labels[i+2] == "amazonaws" && labels[i+1] != "" {
			return labels[i+1]
		}
	}
	return ""
}
