package tlsconfig

import (
	"crypto"
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
	"os"
	"path/filepath"
	"time"
)

// The development CA is for the local stack only: its key sits beside the
// certificates, unencrypted. Production certificates come from the
// hospital's PKI or a managed CA.
const (
	devCAValidity     = 5 * 365 * 24 * time.Hour
	devServerValidity = 365 * 24 * time.Hour
	// devRenewBefore is how long before its expiry EnsureDev reissues the
	// server certificate.
	devRenewBefore = 30 * 24 * time.Hour
)

// DevHosts are the names the development server certificate is valid for:
// every service of the local stack listens on loopback.
var DevHosts = []string{"localhost", "127.0.0.1", "::1"}

// DevFiles are the development CA's and its server certificate's files, in
// one directory.
type DevFiles struct {
	// CACert is the CA certificate clients trust (ca.pem); CAKey its key
	// (ca.key).
	CACert, CAKey string
	// Cert and Key are the server certificate for DevHosts (server.pem)
	// and its key (server.key), which PostgreSQL, Redis, NATS and the API
	// present.
	Cert, Key string
}

// DevFilesIn names the development files in dir.
func DevFilesIn(dir string) DevFiles {
	return DevFiles{
		CACert: filepath.Join(dir, "ca.pem"), CAKey: filepath.Join(dir, "ca.key"),
		Cert: filepath.Join(dir, "server.pem"), Key: filepath.Join(dir, "server.key"),
	}
}

// EnsureDev makes dir (created 0700 if absent) hold a development CA and a
// server certificate signed by it for DevHosts, ECDSA P-256, keys in PKCS
// #8 PEM with mode 0600. An existing CA is never replaced (clients trust
// it); the server certificate is issued again when it is missing, not
// signed by the CA, does not cover DevHosts, or expires within 30 days. It
// returns the files and the paths it wrote.
func EnsureDev(dir string) (DevFiles, []string, error) {
	files := DevFilesIn(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return files, nil, fmt.Errorf("dev TLS: %w", err)
	}
	var wrote []string
	ca, caKey, err := loadPair(files.CACert, files.CAKey)
	if errors.Is(err, os.ErrNotExist) {
		if ca, caKey, err = createCA(files); err == nil {
			wrote = append(wrote, files.CACert, files.CAKey)
		}
	}
	if err != nil {
		return files, wrote, fmt.Errorf("dev TLS CA: %w", err)
	}
	if serverCertFits(files, ca) {
		return files, wrote, nil
	}
	if err := issueServer(files, ca, caKey); err != nil {
		return files, wrote, fmt.Errorf("dev TLS server certificate: %w", err)
	}
	return files, append(wrote, files.Cert, files.Key), nil
}

func createCA(files DevFiles) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "chartstream development CA", Organization: []string{"chartstream (development only)"}},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	ca, err := writeCert(files.CACert, files.CAKey, tmpl, nil, key, nil, devCAValidity)
	return ca, key, err
}

func issueServer(files DevFiles, ca *x509.Certificate, caKey crypto.Signer) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: DevHosts[0], Organization: []string{"chartstream (development only)"}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range DevHosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	_, err = writeCert(files.Cert, files.Key, tmpl, ca, key, caKey, devServerValidity)
	return err
}

// writeCert signs tmpl (self-signed when parent is nil) and writes the
// certificate and key; the key first, so a certificate never sits beside
// a key that is not its own.
func writeCert(certFile, keyFile string, tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, parentKey crypto.Signer, validity time.Duration) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = serial, now.Add(-time.Hour), now.Add(validity)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := writeFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// writeFile replaces path atomically with data at mode.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil { // WriteFile's mode is masked by umask
		return err
	}
	return os.Rename(tmp, path)
}

// loadPair reads a certificate and its private key; a missing file is
// os.ErrNotExist.
func loadPair(certFile, keyFile string) (*x509.Certificate, crypto.Signer, error) {
	cert, err := readCert(certFile)
	if err != nil {
		return nil, nil, err
	}
	raw, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, nil, fmt.Errorf("%s holds no PEM key", keyFile)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("%s is not a signing key", keyFile)
	}
	return cert, signer, nil
}

func readCert(path string) (*x509.Certificate, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return x509.ParseCertificate(block.Bytes)
}

// serverCertFits reports whether the server certificate on disk is signed
// by ca, covers DevHosts, lasts beyond devRenewBefore, and matches its key.
func serverCertFits(files DevFiles, ca *x509.Certificate) bool {
	cert, _, err := loadPair(files.Cert, files.Key)
	if err != nil || cert.CheckSignatureFrom(ca) != nil || time.Until(cert.NotAfter) < devRenewBefore {
		return false
	}
	for _, h := range DevHosts {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return false
	}
	_, err = tls.LoadX509KeyPair(files.Cert, files.Key)
	return err == nil
}
