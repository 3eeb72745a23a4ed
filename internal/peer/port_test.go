package peer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	secretA = "alpha-secret-0123456789"
	secretB = "bravo-secret-0123456789"
)

// roundTrip dials port with d for kind and checks the bytes arrive on the
// listener of that kind (and only there).
func roundTrip(t *testing.T, p *Port, d Dialer, kind byte) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := d.Dial(ctx, p.Addr().String(), kind)
	if err != nil {
		return err
	}
	defer conn.Close()
	ln := p.HTTPListener()
	if kind == KindRaft {
		ln = p.RaftListener()
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, io.LimitReader(c, 5)) // echo
	}()
	if _, err := conn.Write([]byte("hello")); err != nil {
		return err
	}
	// A TLS 1.3 client learns that the server refused its certificate
	// only when it reads.
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 5)
	if _, err := io.ReadFull(conn, b); err != nil {
		return err
	}
	if string(b) != "hello" {
		t.Fatalf("echo %q", b)
	}
	return nil
}

func listen(t *testing.T, conf *tls.Config) *Port {
	t.Helper()
	p, err := Listen("127.0.0.1:0", "", conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func mustSecrets(t *testing.T, s ...string) *tls.Config {
	t.Helper()
	c, err := FromSecrets(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPortDispatchesByKind(t *testing.T) {
	for _, conf := range []*tls.Config{nil, mustSecrets(t, secretA)} {
		p := listen(t, conf)
		for _, kind := range []byte{KindRaft, KindHTTP} {
			if err := roundTrip(t, p, Dialer{TLS: conf}, kind); err != nil {
				t.Fatalf("tls=%v kind %c: %v", conf != nil, kind, err)
			}
		}
	}
}

func TestSecretAdmitsOnlyHolders(t *testing.T) {
	p := listen(t, mustSecrets(t, secretA))
	cases := []struct {
		name string
		d    Dialer
		ok   bool
	}{
		{"same secret", Dialer{TLS: mustSecrets(t, secretA)}, true},
		{"new primary, old accepted", Dialer{TLS: mustSecrets(t, secretB, secretA)}, false}, // the port accepts only A
		{"other secret", Dialer{TLS: mustSecrets(t, secretB)}, false},
		{"plain TCP", Dialer{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := roundTrip(t, p, tc.d, KindRaft)
			if (err == nil) != tc.ok {
				t.Fatalf("admitted=%v, want %v (err %v)", err == nil, tc.ok, err)
			}
		})
	}
}

// TestSecretRotation walks the three steps of a rotation: nodes that
// accept both secrets talk whichever one each presents.
func TestSecretRotation(t *testing.T) {
	oldOnly := mustSecrets(t, secretA)
	installed := mustSecrets(t, secretA, secretB) // presents A, accepts B
	used := mustSecrets(t, secretB, secretA)      // presents B, accepts A
	newOnly := mustSecrets(t, secretB)
	steps := []struct {
		server, client *tls.Config
		ok             bool
	}{
		{oldOnly, installed, true}, // step 1 under way
		{installed, used, true},    // step 2 under way: one presents B
		{used, installed, true},
		{used, newOnly, true}, // step 3 under way
		{newOnly, used, true},
		{oldOnly, used, false}, // a node that missed step 1
		{oldOnly, newOnly, false},
	}
	for i, s := range steps {
		p := listen(t, s.server)
		err := roundTrip(t, p, Dialer{TLS: s.client}, KindHTTP)
		if (err == nil) != s.ok {
			t.Errorf("step %d: admitted=%v, want %v (err %v)", i, err == nil, s.ok, err)
		}
	}
}

func TestSecretsTooShortRefused(t *testing.T) {
	if _, err := FromSecrets([]string{"short"}); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Fatalf("err = %v", err)
	}
	if _, err := GossipKeys(nil); err == nil {
		t.Fatal("no secret accepted")
	}
}

func TestGossipKeysDiffer(t *testing.T) {
	a, _ := GossipKeys([]string{secretA, secretB})
	b, _ := GossipKeys([]string{secretA})
	if len(a[0]) != 32 || string(a[0]) != string(b[0]) || string(a[0]) == string(a[1]) {
		t.Fatal("gossip keys are not derived per secret")
	}
}

// pki writes a CA and a certificate it signed (and one it did not).
func pki(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	for _, who := range []string{"good", "rogue"} {
		caKey := newKey()
		caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		caCert, _ := x509.ParseCertificate(caDER)
		leafKey := newKey()
		leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: who}, NotBefore: time.Now().Add(-time.Hour),
			NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, leafKey.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(leafKey)
		write(who+"-ca.pem", "CERTIFICATE", caDER)
		write(who+".pem", "CERTIFICATE", leafDER)
		write(who+"-key.pem", "EC PRIVATE KEY", kb)
	}
	return dir
}

func TestFilesAdmitOnlyTheCAsCertificates(t *testing.T) {
	dir := pki(t)
	conf := func(who, ca string) *tls.Config {
		c, err := FromFiles(filepath.Join(dir, who+".pem"), filepath.Join(dir, who+"-key.pem"), filepath.Join(dir, ca+"-ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	p := listen(t, conf("good", "good"))
	if err := roundTrip(t, p, Dialer{TLS: conf("good", "good")}, KindRaft); err != nil {
		t.Fatalf("a certificate of the CA was refused: %v", err)
	}
	if err := roundTrip(t, p, Dialer{TLS: conf("rogue", "good")}, KindRaft); err == nil {
		t.Fatal("a certificate of another CA was admitted")
	}
	if err := roundTrip(t, p, Dialer{TLS: mustSecrets(t, secretA)}, KindRaft); err == nil {
		t.Fatal("a secret-derived certificate was admitted by a CA-configured port")
	}
	if _, err := FromFiles(filepath.Join(dir, "good.pem"), filepath.Join(dir, "good-key.pem"), filepath.Join(dir, "missing.pem")); err == nil {
		t.Fatal("a missing CA file was accepted")
	}
}

func TestPlainPortRefusesUnknownKind(t *testing.T) {
	p := listen(t, nil)
	conn, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a connection of unknown kind", n)
	}
}
