package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// keyPair is a certificate with its private key, parsed and as PEM.
type keyPair struct {
	cert            *x509.Certificate
	key             *ecdsa.PrivateKey
	certPEM, keyPEM []byte
}

// Lifetimes of the self-managed certificates. A certificate is renewed
// when less than its renewal window is left; the rotator checks hourly.
const (
	caValidity           = 10 * 365 * 24 * time.Hour
	caRenewBefore        = 365 * 24 * time.Hour
	servingValidity      = 365 * 24 * time.Hour
	servingRenewBefore   = 60 * 24 * time.Hour
	certificateBackdated = time.Hour // tolerates clocks behind the leader's
)

// newCA generates a self-signed CA valid from now.
func newCA(now time.Time) (*keyPair, error) {
	return issue(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "stateguard-ca", Organization: []string{"stateguard"}},
		NotBefore:             now.Add(-certificateBackdated),
		NotAfter:              now.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, nil)
}

// newServingCert generates a serving certificate for dnsNames, signed by ca.
func newServingCert(ca *keyPair, dnsNames []string, now time.Time) (*keyPair, error) {
	notAfter := now.Add(servingValidity)
	if ca.cert.NotAfter.Before(notAfter) {
		notAfter = ca.cert.NotAfter
	}
	return issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: dnsNames[0]},
		DNSNames:    dnsNames,
		NotBefore:   now.Add(-certificateBackdated),
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca)
}

// issue signs template with parent's key, or with its own key when parent
// is nil (a self-signed CA).
func issue(template *x509.Certificate, parent *keyPair) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if template.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128)); err != nil {
		return nil, err
	}
	signer, signerCert := key, template
	if parent != nil {
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, template, signerCert, &key.PublicKey, signer)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return parseKeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
}

// parseKeyPair parses the first certificate of certPEM and keyPEM, and
// checks that they belong together.
func parseKeyPair(certPEM, keyPEM []byte) (*keyPair, error) {
	certs, err := parseCertificates(certPEM)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM private key")
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(certs[0].PublicKey) {
		return nil, errors.New("the private key does not match the certificate")
	}
	first, _ := pem.Decode(certPEM)
	return &keyPair{cert: certs[0], key: key, certPEM: pem.EncodeToMemory(first), keyPEM: keyPEM}, nil
}

// parseCertificates parses every certificate of a PEM bundle.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := bytes.TrimSpace(data); len(rest) > 0; rest = bytes.TrimSpace(rest) {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return nil, errors.New("not PEM")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	return certs, nil
}

// encodeCertificates is the PEM bundle of certs.
func encodeCertificates(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// usableUntil says whether c is valid at now and stays valid beyond
// now+renewBefore.
func usableUntil(c *x509.Certificate, now time.Time, renewBefore time.Duration) bool {
	return !now.Before(c.NotBefore) && now.Add(renewBefore).Before(c.NotAfter)
}

// servingCertFits says whether serving is signed by ca, names exactly
// dnsNames and is not due for renewal at now.
func servingCertFits(serving, ca *keyPair, dnsNames []string, now time.Time) error {
	if err := serving.cert.CheckSignatureFrom(ca.cert); err != nil {
		return fmt.Errorf("not signed by the current CA: %w", err)
	}
	if !slices.Equal(serving.cert.DNSNames, dnsNames) {
		return fmt.Errorf("issued for %v, not %v", serving.cert.DNSNames, dnsNames)
	}
	if !usableUntil(serving.cert, now, servingRenewBefore) {
		return fmt.Errorf("valid until %s: due for renewal", serving.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}
