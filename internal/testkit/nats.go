package testkit

import (
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/chartstream/chartstream/internal/natsauth"
)

// NATSServer is a real nats-server with JetStream running in the test
// process on a loopback port, which a test may stop and start again (same
// port, same store) to simulate an outage.
type NATSServer struct {
	tb   testing.TB
	opts server.Options
	srv  *server.Server
}

// MustNATSServer starts a JetStream server for this test; it stops at the
// end of the test.
func MustNATSServer(tb testing.TB) *NATSServer {
	tb.Helper()
	return MustNATSServerWith(tb, nil)
}

// MustNATSServerWith is MustNATSServer with options edit changes (users,
// TLS) before the server starts.
func MustNATSServerWith(tb testing.TB, edit func(*server.Options)) *NATSServer {
	tb.Helper()
	n := &NATSServer{tb: tb, opts: server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: tb.TempDir(), NoLog: true, NoSigs: true,
	}}
	if edit != nil {
		edit(&n.opts)
	}
	n.Start()
	// Restarts reuse the port the first start got, so clients reconnect.
	n.opts.Port = n.srv.Addr().(*net.TCPAddr).Port
	tb.Cleanup(n.Stop)
	return n
}

// Start starts the server (again).
func (n *NATSServer) Start() {
	n.tb.Helper()
	opts := n.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		n.tb.Fatalf("nats server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		n.tb.Fatal("nats server not ready")
	}
	n.srv = srv
}

// Stop shuts the server down; its JetStream store stays for a restart.
func (n *NATSServer) Stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

// URL is the server's client URL.
func (n *NATSServer) URL() string {
	return "nats://" + net.JoinHostPort(n.opts.Host, strconv.Itoa(n.opts.Port))
}

// MustConnect connects to the server the way chartstream does: reconnecting
// forever, without a reconnect buffer.
func (n *NATSServer) MustConnect(tb testing.TB) *nats.Conn {
	tb.Helper()
	return mustConnect(tb, n.URL())
}

// mustConnect connects to urls (comma-separated) reconnecting forever,
// without a reconnect buffer, until the test ends.
func mustConnect(tb testing.TB, urls string) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		tb.Fatalf("nats connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// OperatorNATS is a real nats-server with JetStream in operator (JWT)
// mode, set up as `make up` sets up the local stack's: the dev operator,
// system and platform accounts of natsauth.DevSetup, in Dir.
type OperatorNATS struct {
	*NATSServer
	// Dir holds the keys and creds (natsauth's file names).
	Dir string
}

// MustOperatorNATS starts an operator-mode server from the config
// natsauth.DevSetup writes; it stops at the end of the test.
func MustOperatorNATS(tb testing.TB) *OperatorNATS {
	tb.Helper()
	dir := tb.TempDir()
	conf := filepath.Join(dir, "nats-auth.conf")
	if _, err := natsauth.DevSetup(filepath.Join(dir, "secrets"), conf, filepath.Join(dir, "jwt")); err != nil {
		tb.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		tb.Fatalf("nats config: %v", err)
	}
	opts.Host, opts.Port, opts.JetStream, opts.StoreDir, opts.NoLog, opts.NoSigs = "127.0.0.1", server.RANDOM_PORT, true, filepath.Join(dir, "js"), true, true
	n := &NATSServer{tb: tb, opts: *opts}
	n.Start()
	n.opts.Port = n.srv.Addr().(*net.TCPAddr).Port
	tb.Cleanup(n.Stop)
	return &OperatorNATS{NATSServer: n, Dir: filepath.Join(dir, "secrets")}
}

// File is the path of one of natsauth's files.
func (o *OperatorNATS) File(name string) string { return filepath.Join(o.Dir, name) }

// MustConnectAs connects with a .creds file (and extra options).
func (o *OperatorNATS) MustConnectAs(tb testing.TB, creds string, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(o.URL(), append([]nats.Option{nats.UserCredentials(creds)}, opts...)...)
	if err != nil {
		tb.Fatalf("nats connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}
