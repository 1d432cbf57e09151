package iot

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"time"
)

// ErrKeyMismatch: the private key does not belong to the certificate. It is
// wrapped in a *FileError (so it also matches ErrConfig and ErrTLS).
var ErrKeyMismatch = errors.New("private key does not match the certificate")

// fileHint turns a file-open error into advice.
func fileHint(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "check the path in the configuration"
	case errors.Is(err, fs.ErrPermission):
		return "the agent's user cannot read it: check the file's owner and mode"
	}
	return ""
}

func readFile(role, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is already in FileError
		}
		return nil, &FileError{Role: role, Path: path, Err: err, Hint: fileHint(err)}
	}
	return b, nil
}

// checkKeyMode refuses a private key readable or writable by group/others.
func checkKeyMode(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &FileError{Role: "private key", Path: path, Err: err, Hint: fileHint(err)}
	}
	if st.Mode().Perm()&0o077 != 0 {
		return &KeyPermissionError{Path: path, Mode: st.Mode().Perm()}
	}
	return nil
}

// loadRoots reads a CA bundle; "" means the system roots (nil pool).
func loadRoots(caFile string) (*x509.CertPool, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := readFile("CA", caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, &FileError{Role: "CA", Path: caFile, Err: errors.New("contains no PEM certificate"), Hint: "use the PEM CA bundle, e.g. AmazonRootCA1.pem"}
	}
	return pool, nil
}

// loadKeyPair loads the device certificate and key with the checks users
// need: missing/unreadable files, key mode, key/cert mismatch, expiry.
func loadKeyPair(certFile, keyFile string, now time.Time) (tls.Certificate, error) {
	if err := checkKeyMode(keyFile); err != nil {
		return tls.Certificate{}, err
	}
	certPEM, err := readFile("certificate", certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := readFile("private key", keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if !hasPEMCert(certPEM) {
			return tls.Certificate{}, &FileError{Role: "certificate", Path: certFile, Err: errors.New("contains no PEM certificate"), Hint: "it should start with -----BEGIN CERTIFICATE-----"}
		}
		if !hasPEMKey(keyPEM) {
			return tls.Certificate{}, &FileError{Role: "private key", Path: keyFile, Err: errors.New("contains no PEM private key"), Hint: "it should start with -----BEGIN ... PRIVATE KEY-----"}
		}
		return tls.Certificate{}, &FileError{Role: "private key", Path: keyFile,
			Err:  fmt.Errorf("%w %s: %v", ErrKeyMismatch, certFile, err),
			Hint: "use the key that was created together with this certificate"}
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return tls.Certificate{}, &FileError{Role: "certificate", Path: certFile, Err: err}
	}
	// Only expiry is checked locally: boards without an RTC often boot with
	// a clock in the past, which would make a NotBefore check misfire.
	if now.After(leaf.NotAfter) {
		return tls.Certificate{}, &FileError{Role: "certificate", Path: certFile,
			Err:  fmt.Errorf("expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339)),
			Hint: "issue or download a new device certificate (or check the system clock)"}
	}
	pair.Leaf = leaf
	return pair, nil
}

func hasPEMCert(b []byte) bool { return bytes.Contains(b, []byte("-----BEGIN CERTIFICATE-----")) }
func hasPEMKey(b []byte) bool  { return bytes.Contains(b, []byte("PRIVATE KEY-----")) }

// tlsConfigs builds the TLS configuration for the chosen transport: for
// mqtts/alpn the mutual-TLS config (ALPN on 443 or with TransportALPN); for
// wss a separate config without client certificates and without NextProtos,
// because gorilla/websocket refuses any NextProtos other than http/1.1.
func tlsConfigs(c Config, host string, port int, now time.Time) (*tls.Config, error) {
	if c.Transport == TransportTCP || c.Transport == TransportWS {
		return nil, nil
	}
	roots, err := loadRoots(c.CAFile)
	if err != nil {
		return nil, err
	}
	serverName := c.ServerName
	if serverName == "" {
		serverName = host
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, ServerName: serverName}
	if c.Transport == TransportWSS {
		return cfg, nil
	}
	if c.CertFile != "" {
		pair, err := loadKeyPair(c.CertFile, c.KeyFile, now)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if c.Transport == TransportALPN || port == 443 {
		cfg.NextProtos = []string{ALPNProtocol}
	}
	return cfg, nil
}

// classifyTLS wraps handshake and verification failures in *TLSError with a
// hint; other errors are returned unchanged.
func classifyTLS(endpoint string, err error) error {
	if err == nil {
		return nil
	}
	var (
		unknownCA x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		hostErr   x509.HostnameError
		verifyErr *tls.CertificateVerificationError
		alert     tls.AlertError
		opErr     *net.OpError
		recErr    tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknownCA):
		return &TLSError{Endpoint: endpoint, Err: err, Hint: "the broker's certificate is not signed by the configured CA; check ca_file (AWS IoT: AmazonRootCA1.pem)"}
	case errors.As(err, &invalid):
		hint := "the broker's certificate is not valid"
		if invalid.Reason == x509.Expired {
			hint = "the broker's certificate is expired or not yet valid; check the system clock"
		}
		return &TLSError{Endpoint: endpoint, Err: err, Hint: hint}
	case errors.As(err, &hostErr):
		return &TLSError{Endpoint: endpoint, Err: err, Hint: "the broker's certificate does not name this endpoint; connect by host name, not IP"}
	case errors.As(err, &verifyErr):
		return &TLSError{Endpoint: endpoint, Err: err, Hint: "the broker's certificate could not be verified"}
	case errors.As(err, &alert), errors.As(err, &opErr) && opErr.Op == "remote error":
		// crypto/tls reports a received alert as a *net.OpError with Op
		// "remote error" (tls.AlertError is only used for QUIC).
		return &TLSError{Endpoint: endpoint, Err: err, Hint: "the broker rejected the TLS handshake, usually our client certificate: check it is registered and active"}
	case errors.As(err, &recErr):
		return &TLSError{Endpoint: endpoint, Err: err, Hint: "the server did not answer with TLS; is this a plain MQTT port?"}
	}
	return err
}
