package testkit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSCluster is a JetStream cluster of real nats-servers running in the
// test process, routed to each other on loopback.
type NATSCluster struct {
	// Servers are the nodes, named n1, n2, …; a stopped one is nil.
	Servers []*server.Server
	tb      testing.TB
	opts    []server.Options
}

// MustNATSCluster starts an n-node JetStream cluster on loopback, each node
// with a store of its own, and waits until JetStream answers (its meta
// leader is elected). It stops when the test ends. Every listener takes a
// port the kernel picks when it binds: ports picked beforehand and
// released could be taken meanwhile by a parallel test.
func MustNATSCluster(tb testing.TB, n int) *NATSCluster {
	tb.Helper()
	c := &NATSCluster{tb: tb, Servers: make([]*server.Server, n)}
	tb.Cleanup(func() {
		for i := range c.Servers {
			c.Stop(i)
		}
	})
	for i := range n {
		c.opts = append(c.opts, server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: server.RANDOM_PORT,
			JetStream: true, StoreDir: tb.TempDir(),
			Cluster: server.ClusterOpts{Name: "chartstream-test", Host: "127.0.0.1", Port: server.RANDOM_PORT},
			NoLog:   true, NoSigs: true,
		})
		c.Start(i)
	}
	js, err := jetstream.New(c.MustConnect(tb))
	if err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the JetStream cluster did not form within 30s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// URLs are the running nodes' client URLs, comma-separated.
func (c *NATSCluster) URLs() string {
	var urls []string
	for _, srv := range c.Servers {
		if srv != nil {
			urls = append(urls, srv.ClientURL())
		}
	}
	return strings.Join(urls, ",")
}

// Node returns the index of the node named name, or -1.
func (c *NATSCluster) Node(name string) int {
	for i, srv := range c.Servers {
		if srv != nil && srv.Name() == name {
			return i
		}
	}
	return -1
}

// Start starts node i (again: same name and store, so it rejoins and
// catches up, on new ports) and waits until it accepts connections.
func (c *NATSCluster) Start(i int) {
	c.tb.Helper()
	opts := c.opts[i]
	// Routes to the nodes running now, at the ports they bound; they tell
	// each other of the rest.
	var routes []string
	for _, srv := range c.Servers {
		if srv != nil {
			routes = append(routes, "nats://"+srv.ClusterAddr().String())
		}
	}
	opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
	srv, err := server.NewServer(&opts)
	if err != nil {
		c.tb.Fatalf("nats cluster node %s: %v", opts.ServerName, err)
	}
	srv.Start()
	// Generous: three JetStream servers under the race detector share two
	// busy cores with the rest of the suite.
	if !srv.ReadyForConnections(30 * time.Second) {
		c.tb.Fatalf("nats cluster node %s not ready", opts.ServerName)
	}
	c.Servers[i] = srv
}

// Stop shuts node i down, as a crash looks to its peers and clients: its
// connections and routes drop at once.
func (c *NATSCluster) Stop(i int) {
	if srv := c.Servers[i]; srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		c.Servers[i] = nil
	}
}

// MustConnect connects to every node the way chartstream does:
// reconnecting forever (to whichever node is up), without a reconnect
// buffer.
func (c *NATSCluster) MustConnect(tb testing.TB) *nats.Conn {
	tb.Helper()
	return mustConnect(tb, c.URLs())
}
