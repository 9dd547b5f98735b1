// Package messaging connects chartstream to NATS JetStream: an external
// server or cluster when a URL is configured, otherwise an embedded server
// running in-process (the real nats-server library with a file store), so
// one binary plus PostgreSQL and Redis is a complete single-node install.
package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Config configures the NATS connection.
type Config struct {
	// URL of an external NATS server or cluster (comma-separated). Empty
	// starts an embedded server.
	URL string
	// StoreDir is the embedded server's JetStream file store. Default
	// ".local/nats-embedded".
	StoreDir string
	// Name identifies this client to the server. Default "chartstream".
	Name string
	// User and Password authenticate with a user/password (dev and
	// simple deployments).
	User, Password string
	// CredsFile authenticates with a user JWT and NKey seed (a .creds
	// file, as nsc or the platform's subscriber command writes).
	CredsFile string
	// NKeySeedFile authenticates with a bare NKey seed.
	NKeySeedFile string
	// TLSCAFile verifies the server's certificate (TLS is used when the
	// URL is tls:// or the server requires it); TLSCertFile and
	// TLSKeyFile are the client's, for mutual TLS.
	TLSCAFile, TLSCertFile, TLSKeyFile string
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if (c.User == "") != (c.Password == "") {
		errs = append(errs, errors.New("NATS user and password go together"))
	}
	methods := 0
	for _, set := range []bool{c.User != "", c.CredsFile != "", c.NKeySeedFile != ""} {
		if set {
			methods++
		}
	}
	if methods > 1 {
		errs = append(errs, errors.New("NATS: choose one of user/password, creds file or NKey seed"))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("NATS TLS certificate and key go together"))
	}
	if c.URL == "" && (methods > 0 || c.TLSCAFile != "" || c.TLSCertFile != "") {
		errs = append(errs, errors.New("NATS credentials and TLS need NATS_URL (the embedded server takes none)"))
	}
	return errors.Join(errs...)
}

// options are the connection's credentials and TLS settings.
func (c Config) options() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NKeySeedFile != "":
		opt, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("NATS NKey seed: %w", err)
		}
		opts = append(opts, opt)
	}
	if c.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(c.TLSCAFile))
	}
	if c.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(c.TLSCertFile, c.TLSKeyFile))
	}
	return opts, nil
}

func (c *Config) setDefaults() {
	if c.StoreDir == "" {
		c.StoreDir = ".local/nats-embedded"
	}
	if c.Name == "" {
		c.Name = "chartstream"
	}
}

// Conn is a NATS connection and, when embedded, the server behind it.
type Conn struct {
	*nats.Conn
	embedded *server.Server
	// url and opts are how the connection was made, for Dial.
	url  string
	opts []nats.Option
}

// Connect connects to cfg.URL, or starts an embedded JetStream server and
// connects to it in-process. Connections reconnect forever: a NATS outage
// must not take the API down with it.
func Connect(ctx context.Context, log *slog.Logger, cfg Config) (*Conn, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	auth, err := cfg.options()
	if err != nil {
		return nil, err
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// No reconnect buffer: a publish while disconnected fails at once.
		// A buffered one would be sent after reconnecting, possibly after
		// an event published later, breaking per-stream order.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("nats reconnected") }),
	}
	if cfg.URL != "" {
		opts = append(append(opts, auth...), nats.RetryOnFailedConnect(false))
		nc, err := nats.Connect(cfg.URL, opts...)
		if err != nil {
			return nil, fmt.Errorf("connect to NATS: %w", err)
		}
		return &Conn{Conn: nc, url: cfg.URL, opts: opts}, nil
	}
	srv, err := StartEmbedded(cfg.StoreDir)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect("", append(opts, nats.InProcessServer(srv))...)
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("connect to embedded NATS: %w", err)
	}
	log.Info("started embedded NATS with JetStream", "store_dir", cfg.StoreDir)
	return &Conn{Conn: nc, embedded: srv, opts: append(opts, nats.InProcessServer(srv))}, nil
}

// Dial opens another connection to the same server, with the same
// credentials and options, named name: for a component that closes (or
// drains) its connection itself, such as a watermill subscriber. The caller
// closes it.
func (c *Conn) Dial(name string) (*nats.Conn, error) {
	nc, err := nats.Connect(c.url, append(c.opts, nats.Name(name))...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	return nc, nil
}

// StartEmbedded starts an in-process NATS server with JetStream on storeDir.
// It listens on no network port: only in-process clients reach it.
func StartEmbedded(storeDir string) (*server.Server, error) {
	srv, err := server.NewServer(&server.Options{
		ServerName: "chartstream-embedded",
		DontListen: true,
		JetStream:  true,
		StoreDir:   storeDir,
		NoSigs:     true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded NATS did not become ready")
	}
	return srv, nil
}

// Embedded reports whether the server runs in this process.
func (c *Conn) Embedded() bool { return c.embedded != nil }

// Check reports whether the connection is usable (for /readyz).
func (c *Conn) Check(context.Context) error {
	if !c.IsConnected() {
		return fmt.Errorf("not connected (%s)", c.Status())
	}
	return nil
}

// Close drains the connection and stops the embedded server, if any.
func (c *Conn) Close() {
	_ = c.Drain()
	for i := 0; i < 50 && !c.IsClosed(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	c.Conn.Close()
	if c.embedded != nil {
		c.embedded.Shutdown()
		c.embedded.WaitForShutdown()
	}
}
