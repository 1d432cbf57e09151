package sigv4

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// AWS's published presigned-URL example ("Authenticating Requests: Using
// Query Parameters (AWS Signature Version 4)", Amazon S3 API reference).
func TestPresignMatchesAWSS3Example(t *testing.T) {
	u, err := Presign(Request{
		Scheme:      "https",
		Host:        "examplebucket.s3.amazonaws.com",
		Path:        "/test.txt",
		Service:     "s3",
		Region:      "us-east-1",
		Time:        time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC),
		Expires:     86400 * time.Second,
		PayloadHash: UnsignedPayload,
	}, Credentials{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"})
	if err != nil {
		t.Fatal(err)
	}
	want := "https://examplebucket.s3.amazonaws.com/test.txt" +
		"?X-Amz-Algorithm=AWS4-HMAC-SHA256" +
		"&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request" +
		"&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host" +
		"&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
	if got := u.String(); got != want {
		t.Fatalf("presigned URL\n got %s\nwant %s", got, want)
	}
}

// The AWS IoT Device SDK for Python v1 unit-test vector
// (test/core/protocol/connection/test_sigv4_core.py): service "iotdata",
// path /mqtt, 86400 s expiry; the signature is the same with a session token
// because the token is appended unsigned.
func TestPresignMatchesPythonSDKVector(t *testing.T) {
	for _, token := range []string{"", "someSessionToken/+="} {
		u, err := Presign(Request{
			Scheme: "wss", Host: "data.iot.us-east-1.amazonaws.com", Path: "/mqtt",
			Service: "iotdata", Region: "us-east-1",
			Time:    time.Date(2017, 6, 28, 20, 48, 45, 0, time.UTC),
			Expires: 86400 * time.Second,
		}, Credentials{AccessKeyID: "TRUSTMETHISIDISFAKE0", SecretAccessKey: "trustMeThisSecretKeyIsSoFakeAaBbCc00Dd11", SessionToken: token})
		if err != nil {
			t.Fatal(err)
		}
		if got := u.Query().Get("X-Amz-Signature"); got != "b79a4d7e31ccbf96b22d93cce1b500b9ee611ec966159547e140ae32e4dcebed" {
			t.Errorf("token %q: signature %s", token, got)
		}
	}
}

// independentSignature computes a SigV4 signature from a canonical request
// written out literally, without using this package's helpers.
func independentSignature(secret, canonicalRequest string) string {
	mac := func(key []byte, s string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(s))
		return h.Sum(nil)
	}
	crHash := sha256.Sum256([]byte(canonicalRequest))
	sts := "AWS4-HMAC-SHA256\n20240301T123456Z\n20240301/eu-west-1/iotdevicegateway/aws4_request\n" + hex.EncodeToString(crHash[:])
	k := mac(mac(mac(mac([]byte("AWS4"+secret), "20240301"), "eu-west-1"), "iotdevicegateway"), "aws4_request")
	return hex.EncodeToString(mac(k, sts))
}

func TestIoTWebSocketURL(t *testing.T) {
	const host = "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com"
	const secret = "s3cr3t/Key+With=Specials"
	canonical := "GET\n" +
		"/mqtt\n" +
		"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20240301%2Feu-west-1%2Fiotdevicegateway%2Faws4_request&X-Amz-Date=20240301T123456Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\n" +
		"host:" + host + "\n" +
		"\n" +
		"host\n" +
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	sig := independentSignature(secret, canonical)
	base := "wss://" + host + "/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256" +
		"&X-Amz-Credential=AKIDEXAMPLE%2F20240301%2Feu-west-1%2Fiotdevicegateway%2Faws4_request" +
		"&X-Amz-Date=20240301T123456Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=" + sig
	at := time.Date(2024, 3, 1, 12, 34, 56, 0, time.UTC)
	tests := []struct {
		name, token, want string
	}{
		{"no session token", "", base},
		{"session token appended after signing", "FwoGZXIvYXdz/EXAMPLE+token==", base + "&X-Amz-Security-Token=FwoGZXIvYXdz%2FEXAMPLE%2Btoken%3D%3D"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := IoTWebSocketURL("wss", host, "eu-west-1", Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: secret, SessionToken: tc.token}, at, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := u.String(); got != tc.want {
				t.Fatalf("URL\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestPresignSignedSessionToken(t *testing.T) {
	// With SignSessionToken the token is part of the canonical query, so the
	// signature differs from the unsigned-token variant and the token
	// appears before the signature.
	r := Request{Scheme: "https", Host: "h.example", Path: "/", Service: "s3", Region: "us-east-1", Time: time.Unix(0, 0)}
	c := Credentials{AccessKeyID: "A", SecretAccessKey: "B", SessionToken: "T"}
	unsigned, _ := Presign(r, c)
	r.SignSessionToken = true
	signed, _ := Presign(r, c)
	if unsigned.Query().Get("X-Amz-Signature") == signed.Query().Get("X-Amz-Signature") {
		t.Fatal("signing the token did not change the signature")
	}
	if !strings.HasSuffix(unsigned.RawQuery, "&X-Amz-Security-Token=T") {
		t.Fatalf("unsigned token not appended last: %s", unsigned.RawQuery)
	}
	if strings.HasSuffix(signed.RawQuery, "&X-Amz-Security-Token=T") {
		t.Fatalf("signed token should precede the signature: %s", signed.RawQuery)
	}
}

func TestPresignErrors(t *testing.T) {
	ok := Request{Host: "h", Service: "s", Region: "r", Time: time.Unix(1, 0)}
	creds := Credentials{AccessKeyID: "a", SecretAccessKey: "b"}
	if _, err := Presign(ok, Credentials{}); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("missing credentials: %v", err)
	}
	for name, mut := range map[string]func(*Request){
		"host": func(r *Request) { r.Host = "" }, "service": func(r *Request) { r.Service = "" },
		"region": func(r *Request) { r.Region = "" }, "time": func(r *Request) { r.Time = time.Time{} },
	} {
		r := ok
		mut(&r)
		if _, err := Presign(r, creds); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("missing %s: %v", name, err)
		}
	}
}

func TestRegionFromIoTEndpoint(t *testing.T) {
	for host, want := range map[string]string{
		"abc-ats.iot.eu-west-1.amazonaws.com":     "eu-west-1",
		"abc.iot.cn-north-1.amazonaws.com.cn:443": "cn-north-1",
		"data.iot.us-east-1.amazonaws.com":        "us-east-1",
		"broker.example.com":                      "",
		"127.0.0.1:8883":                          "",
	} {
		if got := RegionFromIoTEndpoint(host); got != want {
			t.Errorf("%s: got %q want %q", host, got, want)
		}
	}
}

func TestProviders(t *testing.T) {
	ctx := context.Background()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	dir := t.TempDir()
	file := filepath.Join(dir, "credentials")
	content := "# comment\n[default]\naws_access_key_id = DEFKEY\naws_secret_access_key = DEFSECRET\n\n[dev]\naws_access_key_id=DEVKEY\naws_secret_access_key=DEVSECRET\naws_session_token = DEVTOKEN\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		p       Provider
		wantKey string
		wantTok string
		wantErr bool
	}{
		{"static", Static{AccessKeyID: "S", SecretAccessKey: "X"}, "S", "", false},
		{"static empty", Static{}, "", "", true},
		{"env", Env{Getenv: env(map[string]string{"AWS_ACCESS_KEY_ID": "E", "AWS_SECRET_ACCESS_KEY": "X", "AWS_SESSION_TOKEN": "T"})}, "E", "T", false},
		{"env missing secret", Env{Getenv: env(map[string]string{"AWS_ACCESS_KEY_ID": "E"})}, "", "", true},
		{"file default profile", SharedFile{Path: file, Getenv: env(nil)}, "DEFKEY", "", false},
		{"file AWS_PROFILE", SharedFile{Path: file, Getenv: env(map[string]string{"AWS_PROFILE": "dev"})}, "DEVKEY", "DEVTOKEN", false},
		{"file via home dir", SharedFile{Getenv: env(nil), HomeDir: func() (string, error) { return dir, nil }}, "", "", true},
		{"file unknown profile", SharedFile{Path: file, Profile: "nope", Getenv: env(nil)}, "", "", true},
		{"chain env first", Default(env(map[string]string{"AWS_ACCESS_KEY_ID": "E", "AWS_SECRET_ACCESS_KEY": "X"}), file), "E", "", false},
		{"chain falls back to file", Default(env(nil), file), "DEFKEY", "", false},
		{"chain nothing", Default(env(nil), filepath.Join(dir, "missing")), "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.p.Retrieve(ctx)
			if tc.wantErr {
				if !errors.Is(err, ErrNoCredentials) {
					t.Fatalf("want ErrNoCredentials, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.AccessKeyID != tc.wantKey || c.SessionToken != tc.wantTok {
				t.Fatalf("got %+v", c)
			}
		})
	}

	if got := RegionFromEnv(env(map[string]string{"AWS_DEFAULT_REGION": "b"})); got != "b" {
		t.Errorf("AWS_DEFAULT_REGION: %q", got)
	}
	if got := RegionFromEnv(env(map[string]string{"AWS_REGION": "a", "AWS_DEFAULT_REGION": "b"})); got != "a" {
		t.Errorf("AWS_REGION wins: %q", got)
	}
}
