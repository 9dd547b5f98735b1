// Package tlsconfig holds chartstream's transport security settings in one
// place (HIPAA 164.312(e)): the TLS configuration the HTTP API serves with,
// the certificate authorities clients trust, and the development CA that
// `chartstream dev init-tls` creates for the local stack.
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// MinVersion is the oldest TLS version chartstream speaks, as server and
// as client: TLS 1.0 and 1.1 are refused.
const MinVersion = tls.VersionTLS12

// cipherSuites are the TLS 1.2 suites the server accepts: forward secret
// (ECDHE) and AEAD only, no CBC, no RSA key exchange. TLS 1.3's suites are
// not configurable and all meet the same bar.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// reloadEvery bounds how often the server looks at its certificate files.
const reloadEvery = time.Second

// Server returns the TLS configuration of a server presenting the
// certificate and key in certFile and keyFile (PEM; the certificate file
// may hold the chain). It loads them at once, so a missing or mismatched
// pair fails here, at start. Afterwards it notices when either file
// changes (checked at most once a second, on a handshake) and serves the
// new pair from the next handshake on, so a renewed certificate needs no
// restart; a pair that does not load (half written) is logged on log, if
// not nil, and the previous one kept.
func Server(certFile, keyFile string, log *slog.Logger) (*tls.Config, error) {
	r := &reloader{certFile: certFile, keyFile: keyFile, every: reloadEvery, log: log}
	if err := r.load(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:     MinVersion,
		CipherSuites:   cipherSuites,
		GetCertificate: r.certificate,
	}, nil
}

// reloader serves a certificate pair from files and reloads it when they
// change.
type reloader struct {
	certFile, keyFile string
	every             time.Duration
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]time.Time // the files' modification times when loaded
	checked time.Time
}

func (r *reloader) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= r.every {
		r.checked = now
		if stamp, err := r.stamps(); err == nil && stamp != r.stamp {
			if err := r.loadLocked(); err != nil && r.log != nil {
				r.log.Warn("TLS certificate changed but does not load; serving the previous one", "cert_file", r.certFile, "error", err.Error())
			}
		}
	}
	return r.cert, nil
}

func (r *reloader) load() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loadLocked()
}

func (r *reloader) loadLocked() error {
	stamp, err := r.stamps()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s and key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

func (r *reloader) stamps() ([2]time.Time, error) {
	var stamp [2]time.Time
	for i, f := range []string{r.certFile, r.keyFile} {
		info, err := os.Stat(f)
		if err != nil {
			return stamp, fmt.Errorf("TLS: %w", err)
		}
		stamp[i] = info.ModTime()
	}
	return stamp, nil
}

// CAPool reads the PEM certificates in caFile, the authorities a client
// trusts for a server's certificate.
func CAPool(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("TLS CA %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

// Client returns a client TLS configuration that trusts the authorities in
// caFile, or the system's when caFile is empty, with MinVersion.
func Client(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: MinVersion}
	if caFile == "" {
		return cfg, nil
	}
	pool, err := CAPool(caFile)
	if err != nil {
		return nil, err
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// CheckPair reports a half-configured certificate: a certificate without
// its key or a key without its certificate. name prefixes the settings'
// names (e.g. "TLS" gives TLS_CERT_FILE and TLS_KEY_FILE).
func CheckPair(name, certFile, keyFile string) error {
	if (certFile == "") != (keyFile == "") {
		return fmt.Errorf("%s_CERT_FILE and %s_KEY_FILE go together: set both or neither", name, name)
	}
	return nil
}
