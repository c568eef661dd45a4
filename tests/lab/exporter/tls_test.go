//go:build labvm

package exporter

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// TestTLSBasicAuth serves /metrics with TLS and basic auth from a web
// configuration file (--web.config.file, exporter-toolkit's format) and
// scrapes it with a TLS client that trusts only the test's certificate.
func TestTLSBasicAuth(t *testing.T) {
	labtest.LoadModule(t)
	dir := t.TempDir()
	certPEM, keyPEM, cert := selfSignedCert(t)
	const user, password = "prometheus", "kfw-lab-secret"
	// The lowest cost keeps TCG fast; the exporter accepts any bcrypt hash.
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"cert.pem": string(certPEM),
		"key.pem":  string(keyPEM),
		"web.yml": fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  %s: %s\n",
			filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), user, hash),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	e := startExporter(t, exporterConfig{
		args:   []string{"--web.config.file=" + filepath.Join(dir, "web.yml")},
		client: client, user: user, password: password,
	})

	resp, body, err := e.request("/metrics", user, password)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape with the right credentials: HTTP %d: %s", resp.StatusCode, body)
	}
	if resp.TLS == nil || !resp.TLS.HandshakeComplete || len(resp.TLS.PeerCertificates) == 0 ||
		!resp.TLS.PeerCertificates[0].Equal(cert) {
		t.Fatalf("the scrape did not run over TLS with the test's certificate: %+v", resp.TLS)
	}
	m, err := parseMetrics(body)
	if err != nil {
		t.Fatal(err)
	}
	if up := m.mustValue(t, "kfw_up"); up != 1 {
		t.Errorf("kfw_up %v over TLS, want 1", up)
	}

	for _, c := range []struct{ what, user, password string }{
		{"no credentials", "", ""},
		{"a wrong password", user, "wrong"},
		{"an unknown user", "admin", password},
	} {
		resp, _, err := e.request("/metrics", c.user, c.password)
		if err != nil {
			t.Errorf("scrape with %s: %v", c.what, err)
			continue
		}
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("scrape with %s: HTTP %d, want 401", c.what, resp.StatusCode)
		}
	}

	// Plain HTTP to the TLS port gets the server's complaint, not metrics.
	plainResp, err := (&http.Client{Timeout: hangLimit}).Get(strings.Replace(e.base, "https://", "http://", 1) + "/metrics")
	if err != nil {
		t.Fatalf("plain HTTP to the TLS port: %v", err)
	}
	plainResp.Body.Close()
	if plainResp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS port: HTTP %d, want 400", plainResp.StatusCode)
	}
	// A client that does not trust the certificate refuses the server.
	// (No handshake timeout: the debug kernel's TCG is slow.)
	_, err = (&http.Client{Transport: &http.Transport{}, Timeout: hangLimit}).Get(e.base + "/metrics")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("a client without the test's certificate: %v, want an unknown authority error", err)
	}
}

// selfSignedCert returns a certificate for 127.0.0.1 signed by its own key,
// PEM encoded with its key, and parsed.
func selfSignedCert(t *testing.T) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "kfw_exporter lab test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	var c, k bytes.Buffer
	if err := errors.Join(pem.Encode(&c, &pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.Encode(&k, &pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})); err != nil {
		t.Fatal(err)
	}
	return c.Bytes(), k.Bytes(), cert
}
