package peer

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"
)

// MinSecretLen is the shortest cluster secret accepted.
const MinSecretLen = 16

// Labels separate the keys derived from one secret.
const (
	labelTLS    = "dura peer tls v1"
	labelGossip = "dura gossip v1"
)

func derive(secret, label string, n int) ([]byte, error) {
	return hkdf.Key(sha256.New, []byte(secret), nil, label, n)
}

// CheckSecrets refuses an empty list and secrets too short to resist
// guessing.
func CheckSecrets(secrets []string) error {
	if len(secrets) == 0 {
		return errors.New("no cluster secret")
	}
	for i, s := range secrets {
		if len(s) < MinSecretLen {
			return fmt.Errorf("cluster secret %d is %d bytes; at least %d are required", i+1, len(s), MinSecretLen)
		}
	}
	return nil
}

// GossipKeys derives the gossip encryption keys (AES-256) from the
// secrets; the first is the one gossip encrypts with.
func GossipKeys(secrets []string) ([][]byte, error) {
	if err := CheckSecrets(secrets); err != nil {
		return nil, err
	}
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		k, err := derive(s, labelGossip, 32)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	return keys, nil
}

// secretCert is the self-signed certificate every holder of secret
// derives alike: an Ed25519 key from the secret and fixed fields, so the
// signature (Ed25519 is deterministic) and the whole certificate match.
func secretCert(secret string) (tls.Certificate, error) {
	seed, err := derive(secret, labelTLS, ed25519.SeedSize)
	if err != nil {
		return tls.Certificate{}, err
	}
	key := ed25519.NewKeyFromSeed(seed)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "dura cluster"},
		NotBefore:             time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// FromSecrets is the TLS configuration (for both ends of a connection)
// of a cluster secured by a shared secret: each node presents the
// certificate derived from secrets[0], and a peer is admitted when it
// proves it holds the key derived from any of the secrets. Accepting
// several secrets is how a secret is rotated without downtime.
func FromSecrets(secrets []string) (*tls.Config, error) {
	if err := CheckSecrets(secrets); err != nil {
		return nil, err
	}
	var own tls.Certificate
	var accepted []ed25519.PublicKey
	for i, s := range secrets {
		cert, err := secretCert(s)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			own = cert
		}
		accepted = append(accepted, cert.PrivateKey.(ed25519.PrivateKey).Public().(ed25519.PublicKey))
	}
	verify := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("peer presented no certificate")
		}
		pub, ok := cs.PeerCertificates[0].PublicKey.(ed25519.PublicKey)
		if ok {
			for _, a := range accepted {
				if bytes.Equal(pub, a) {
					return nil
				}
			}
		}
		return errors.New("peer does not hold the cluster secret")
	}
	return mutualConfig(own, verify), nil
}

// FromFiles is the TLS configuration of a cluster with its own PKI: each
// node presents certFile/keyFile, and a peer is admitted when its
// certificate chains to a CA in caFile. Host names are not checked:
// nodes dial each other by address, and the CA vouches for membership.
func FromFiles(certFile, keyFile, caFile string) (*tls.Config, error) {
	own, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("TLS CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("TLS CA: no certificate in %s", caFile)
	}
	verify := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("peer presented no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
			Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		return err
	}
	return mutualConfig(own, verify), nil
}

// mutualConfig serves and dials with cert and admits a peer only if
// verify accepts its certificate, on either end.
func mutualConfig(cert tls.Certificate, verify func(tls.ConnectionState) error) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert,
		// The standard checks want host names; VerifyConnection does the
		// checking instead, on both ends.
		InsecureSkipVerify: true,
		VerifyConnection:   verify,
		ServerName:         "dura",
	}
}
