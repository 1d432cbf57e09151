package devcerts

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestIssueChainsToCA(t *testing.T) {
	ca, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Issue(ca, IssueOptions{CommonName: "localhost", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := Issue(ca, IssueOptions{CommonName: "thing-1", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if _, err := srv.Cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("server cert does not verify for localhost: %v", err)
	}
	if err := srv.Cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("server cert not valid for 127.0.0.1: %v", err)
	}
	if _, err := cli.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client cert does not verify: %v", err)
	}
	if _, err := cli.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("client-only cert verified for server auth")
	}
	if cli.Cert.Subject.CommonName != "thing-1" {
		t.Errorf("CN = %q", cli.Cert.Subject.CommonName)
	}
	// The PEM forms load as a TLS key pair.
	if _, err := tls.X509KeyPair(cli.CertPEM, cli.KeyPEM); err != nil {
		t.Errorf("client PEM pair: %v", err)
	}
	other, err := NewCA("other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	op := x509.NewCertPool()
	op.AddCert(other.Cert)
	if _, err := cli.Cert.Verify(x509.VerifyOptions{Roots: op, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("cert verified against an unrelated CA")
	}
}

func TestIssueValidity(t *testing.T) {
	ca, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	p, err := Issue(ca, IssueOptions{CommonName: "x", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Cert.NotBefore.Before(before) || p.Cert.NotAfter.Before(before.AddDate(1, 0, -1)) {
		t.Errorf("default validity %v … %v", p.Cert.NotBefore, p.Cert.NotAfter)
	}
	nb := before.Add(-48 * time.Hour).Truncate(time.Second)
	na := before.Add(-24 * time.Hour).Truncate(time.Second)
	p, err = Issue(ca, IssueOptions{CommonName: "expired", Client: true, NotBefore: nb, NotAfter: na})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Cert.NotBefore.Equal(nb) || !p.Cert.NotAfter.Equal(na) {
		t.Errorf("validity %v … %v, want %v … %v", p.Cert.NotBefore, p.Cert.NotAfter, nb, na)
	}
	if _, err := Issue(ca, IssueOptions{CommonName: "none"}); err == nil {
		t.Error("Issue without Server or Client succeeded")
	}
}

func TestWriteSet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	if err := WriteSet(dir, "my-thing", false); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{
		CACertFile: 0o644, CAKeyFile: 0o600, ServerCertFile: 0o644,
		ServerKeyFile: 0o600, DeviceCertFile: 0o644, DeviceKeyFile: 0o600,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	read := func(n string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(read(CACertFile)) {
		t.Fatal("ca.crt holds no certificate")
	}
	dev, err := tls.X509KeyPair(read(DeviceCertFile), read(DeviceKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if dev.Leaf.Subject.CommonName != "my-thing" {
		t.Errorf("device CN %q", dev.Leaf.Subject.CommonName)
	}
	if _, err := dev.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("device cert: %v", err)
	}
	srv, err := tls.X509KeyPair(read(ServerCertFile), read(ServerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := srv.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: h}); err != nil {
			t.Errorf("server cert for %s: %v", h, err)
		}
	}

	// Existing files are kept without force.
	caBefore := read(CACertFile)
	err = WriteSet(dir, "my-thing", false)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "ca.crt") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second WriteSet: %v, want ErrExists naming ca.crt and --force", err)
	}
	if string(read(CACertFile)) != string(caBefore) {
		t.Error("ca.crt changed without force")
	}
	// Only one of the six present is enough to refuse, and nothing is written.
	dir2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir2, DeviceKeyFile), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteSet(dir2, "t", false); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), DeviceKeyFile) {
		t.Fatalf("WriteSet over device.key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir2, CACertFile)); err == nil {
		t.Error("ca.crt written although WriteSet refused")
	}
	// Force replaces, and tightens a loose key mode.
	if err := os.Chmod(filepath.Join(dir, CAKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteSet(dir, "my-thing", true); err != nil {
		t.Fatal(err)
	}
	if string(read(CACertFile)) == string(caBefore) {
		t.Error("ca.crt not replaced with force")
	}
	if fi, _ := os.Stat(filepath.Join(dir, CAKeyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("ca.key mode %v after force", fi.Mode().Perm())
	}
	if err := WriteSet(t.TempDir(), "", false); err == nil {
		t.Error("empty thing name accepted")
	}
}
