// Package devcerts creates a development PKI for the local AWS IoT cloud:
// a certificate authority, a server certificate for localhost and a device
// (client) certificate whose common name is the thing name — the shape of
// credentials AWS IoT Core uses for mutual TLS. All keys are ECDSA P-256.
//
// The certificates are for local development and tests only: the CA key is
// written next to the certificates and nothing is protected by a passphrase.
package devcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Pair is a certificate with its private key, parsed and PEM-encoded.
type Pair struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	KeyPEM  []byte
}

// IssueOptions describe a certificate to issue from a CA.
type IssueOptions struct {
	// CommonName is the subject CN (the thing name for device certificates).
	CommonName string
	// DNSNames and IPs are the subject alternative names.
	DNSNames []string
	IPs      []net.IP
	// Server and Client select the extended key usages (server auth,
	// client auth); both may be set.
	Server, Client bool
	// NotBefore and NotAfter bound validity; zero values mean now-1h and
	// now+1 year.
	NotBefore, NotAfter time.Time
}

// ErrExists is returned (wrapped) by WriteSet when a file it would write is
// already there and force is false.
var ErrExists = errors.New("file exists")

// NewCA creates a self-signed certificate authority valid from an hour ago
// for validFor.
func NewCA(commonName string, validFor time.Duration) (*Pair, error) {
	if validFor <= 0 {
		return nil, fmt.Errorf("devcerts: CA validity %v: must be positive", validFor)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devcerts: generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"pinshadow development"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	return sign(tmpl, tmpl, key, key)
}

// Issue creates a leaf certificate signed by ca.
func Issue(ca *Pair, o IssueOptions) (*Pair, error) {
	if ca == nil || ca.Cert == nil || ca.Key == nil {
		return nil, errors.New("devcerts: issue: CA certificate and key are required")
	}
	if !o.Server && !o.Client {
		return nil, fmt.Errorf("devcerts: issue %q: set Server, Client or both", o.CommonName)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("devcerts: generate key for %q: %w", o.CommonName, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	nb, na := o.NotBefore, o.NotAfter
	if nb.IsZero() {
		nb = now.Add(-time.Hour)
	}
	if na.IsZero() {
		na = now.AddDate(1, 0, 0)
	}
	var eku []x509.ExtKeyUsage
	if o.Server {
		eku = append(eku, x509.ExtKeyUsageServerAuth)
	}
	if o.Client {
		eku = append(eku, x509.ExtKeyUsageClientAuth)
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: o.CommonName},
		DNSNames:       o.DNSNames,
		IPAddresses:    o.IPs,
		NotBefore:      nb,
		NotAfter:       na,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    eku,
		SubjectKeyId:   keyID(&key.PublicKey),
		AuthorityKeyId: ca.Cert.SubjectKeyId,
	}
	return sign(tmpl, ca.Cert, key, ca.Key)
}

// sign creates the certificate for key's public half, signed by signer.
func sign(tmpl, parent *x509.Certificate, key, signer *ecdsa.PrivateKey) (*Pair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("devcerts: create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("devcerts: parse certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("devcerts: encode key for %q: %w", tmpl.Subject.CommonName, err)
	}
	return &Pair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	}, nil
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("devcerts: serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// keyID is the RFC 5280 method-1 key identifier (SHA-1 of the public key).
func keyID(pub *ecdsa.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	sum := sha1.Sum(der)
	return sum[:]
}

// File names written by WriteSet.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
	DeviceCertFile = "device.crt"
	DeviceKeyFile  = "device.key"
)

// WriteSet creates dir (if needed) and writes a fresh development PKI into
// it: ca.crt/ca.key, server.crt/server.key (for localhost, 127.0.0.1 and
// ::1) and device.crt/device.key (CN = thing, client auth). Keys are written
// with mode 0600. Unless force is set, an existing file is never
// overwritten: WriteSet checks all six names first and returns an error
// wrapping ErrExists that names the file, writing nothing.
func WriteSet(dir, thing string, force bool) error {
	if thing == "" {
		return errors.New("devcerts: thing name is empty: pass the thing name the device will use")
	}
	names := []string{CACertFile, CAKeyFile, ServerCertFile, ServerKeyFile, DeviceCertFile, DeviceKeyFile}
	if !force {
		for _, n := range names {
			p := filepath.Join(dir, n)
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("devcerts: %s: %w; use --force to overwrite", p, ErrExists)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("devcerts: %w", err)
			}
		}
	}
	ca, err := NewCA("pinshadow development CA", 10*365*24*time.Hour)
	if err != nil {
		return err
	}
	srv, err := Issue(ca, IssueOptions{
		CommonName: "localhost",
		DNSNames:   []string{"localhost"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		Server:     true,
	})
	if err != nil {
		return err
	}
	dev, err := Issue(ca, IssueOptions{CommonName: thing, Client: true})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("devcerts: create output directory: %w", err)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{CACertFile, ca.CertPEM, 0o644}, {CAKeyFile, ca.KeyPEM, 0o600},
		{ServerCertFile, srv.CertPEM, 0o644}, {ServerKeyFile, srv.KeyPEM, 0o600},
		{DeviceCertFile, dev.CertPEM, 0o644}, {DeviceKeyFile, dev.KeyPEM, 0o600},
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(dir, f.name), f.data, f.mode, force); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes atomically-enough for development use: O_EXCL unless
// force, and the mode is enforced even when the file already existed.
func writeFile(path string, data []byte, mode os.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if !force {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, mode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("devcerts: %s: %w; use --force to overwrite", path, ErrExists)
		}
		return fmt.Errorf("devcerts: %w", err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("devcerts: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("devcerts: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("devcerts: write %s: %w", path, err)
	}
	return nil
}
