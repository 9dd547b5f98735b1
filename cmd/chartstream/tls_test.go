package main

import (
	"crypto/tls"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/chartstream/chartstream/internal/messaging"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/internal/tlsconfig"
)

// mustTLSNATS starts a NATS server that speaks TLS only, with the dev CA's
// certificate and a password, and returns its tls:// URL.
func mustTLSNATS(t *testing.T, files tlsconfig.DevFiles) string {
	t.Helper()
	cfg, err := tlsconfig.Server(files.Cert, files.Key, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := testkit.MustNATSServerWith(t, func(o *server.Options) {
		o.TLS, o.TLSConfig, o.TLSTimeout = true, cfg, 5
		o.Username, o.Password = "relay", "s3cret"
	})
	return "tls://" + strings.TrimPrefix(srv.URL(), "nats://")
}

// The process end to end with transport security on: the API on HTTPS
// (TLS 1.1 refused, 1.2 and 1.3 served) and NATS over TLS with a password,
// a command reaching the read model through both.
func TestEndToEndOverTLS(t *testing.T) {
	t.Parallel()
	files, _, err := tlsconfig.EnsureDev(filepath.Join(t.TempDir(), "tls"))
	if err != nil {
		t.Fatal(err)
	}
	natsURL := mustTLSNATS(t, files)

	// Without the CA, the platform does not trust the NATS server.
	untrusting := newTestMain(t, false, true, "")
	untrusting.Config.NATSURL = natsURL
	untrusting.Config.NATS = messaging.Config{User: "relay", Password: "s3cret"}
	if err := untrusting.Open(testkit.Context(t)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("NATS without the CA: Open = %v, want a certificate error", err)
	}
	untrusting.Close()

	m := newTestMain(t, true, true, "")
	m.Config.NATSURL = natsURL
	m.Config.NATS = messaging.Config{User: "relay", Password: "s3cret", TLSCAFile: files.CACert}
	m.Config.TLSCertFile, m.Config.TLSKeyFile = files.Cert, files.Key
	base := startMain(t, m)
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("base URL %s, want https", base)
	}
	roots, err := tlsconfig.CAPool(files.CACert)
	if err != nil {
		t.Fatal(err)
	}
	client := func(minV, maxV uint16) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: minV, MaxVersion: maxV},
		}}
	}
	if resp, err := client(tls.VersionTLS10, tls.VersionTLS11).Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("TLS 1.1: the API answered, want a refused handshake")
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		resp, err := client(v, v).Get(base + "/healthz")
		if err != nil {
			t.Fatalf("%s: %v", tls.VersionName(v), err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.TLS.Version != v {
			t.Errorf("%s: status %d over %s", tls.VersionName(v), resp.StatusCode, tls.VersionName(resp.TLS.Version))
		}
	}
	if resp, err := http.Get(strings.Replace(base, "https://", "http://", 1) + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered 200 on the TLS port")
		}
	}

	// A command and a read-your-writes query: the event travels relay ->
	// NATS (TLS) -> projector -> read model.
	registerAndReadBack(t, clinicianSender(t, m, base, client(tls.VersionTLS12, 0)), "TLS-1")
}

// Half a certificate pair is refused at start, naming both settings.
func TestConfigRefusesHalfATLSPair(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]Config{
		"certificate only": {TLSCertFile: "/x/server.pem"},
		"key only":         {TLSKeyFile: "/x/server.key"},
	} {
		c.HTTPAddr, c.RedisURL, c.LogLevel = "127.0.0.1:0", "redis://127.0.0.1:1/0", "info"
		err := c.Validate(true, false)
		if err == nil || !strings.Contains(err.Error(), "TLS_CERT_FILE and TLS_KEY_FILE go together") {
			t.Errorf("%s: %v", name, err)
		}
	}
	c := Config{HTTPAddr: "127.0.0.1:0", RedisURL: "redis://127.0.0.1:1/0", RedisTLSCAFile: "/x/ca.pem", LogLevel: "info"}
	if err := c.Validate(true, false); err == nil || !strings.Contains(err.Error(), "REDIS_TLS_CA_FILE needs a rediss://") {
		t.Errorf("a Redis CA with a redis:// URL: %v", err)
	}
}
