package testkit

import (
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// PGProxy is a TCP proxy in front of PostgreSQL that loses answers the way
// a network does: armed with CutAfterCommit, it lets the next exchange that
// inserts (on any connection, up to the server's ReadyForQuery: an event
// store append) run and commit on the server, swallows what the server
// answers, and cuts the connection once the server said it is ready again,
// after the commit. While armed it holds every answer back until it knows
// whether the exchange inserted. The client then cannot know
// whether its commit happened. With Refuse, it also turns new connections
// away and cuts the existing ones, as a database that is gone.
type PGProxy struct {
	tb       testing.TB
	ln       net.Listener
	target   string
	armed    atomic.Bool
	goAway   atomic.Bool // refuse from the cut on
	refusing atomic.Bool
	stalled  atomic.Bool
	mu       sync.Mutex
	conns    map[net.Conn]bool
}

// MustPGProxy starts a proxy to the host of the PostgreSQL URL in envVar
// and returns it with that URL pointed at the proxy.
func MustPGProxy(tb testing.TB, envVar string) (*PGProxy, string) {
	tb.Helper()
	u, err := url.Parse(Env(tb, envVar))
	if err != nil {
		tb.Fatalf("%s: %v", envVar, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &PGProxy{tb: tb, ln: ln, target: u.Host, conns: map[net.Conn]bool{}}
	tb.Cleanup(p.close)
	go p.accept()
	u.Host = ln.Addr().String()
	return p, u.String()
}

// CutAfterCommit arms the proxy for the next exchange that inserts (see
// PGProxy).
func (p *PGProxy) CutAfterCommit() { p.armed.Store(true) }

// CutAfterCommitAndRefuse is CutAfterCommit, after which the database is
// unreachable (Refuse) until Refuse(false).
func (p *PGProxy) CutAfterCommitAndRefuse() {
	p.goAway.Store(true)
	p.armed.Store(true)
}

// Refuse makes the database unreachable through the proxy (true) or
// reachable again (false).
func (p *PGProxy) Refuse(on bool) {
	p.refusing.Store(on)
	if on {
		p.mu.Lock()
		for c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
	}
}

// Stall holds every answer of the server back (true), as a database that
// has stopped answering without closing anything, or lets them through
// again (false).
func (p *PGProxy) Stall(on bool) { p.stalled.Store(on) }

func (p *PGProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.refusing.Load() {
			_ = client.Close()
			continue
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.track(client, server)
		go p.clientToServer(client, server)
		go p.serverToClient(server, client)
	}
}

func (p *PGProxy) track(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		p.conns[c] = true
	}
}

// clientToServer forwards the client's bytes.
func (p *PGProxy) clientToServer(client, server net.Conn) {
	defer server.Close()
	_, _ = io.Copy(server, client)
}

// serverToClient forwards the server's messages. While the proxy is armed
// it holds an exchange's messages back until ReadyForQuery: if one says a
// row was inserted, the proxy takes the exchange as its cut, swallows it and
// closes both ends; if not, it passes them on.
func (p *PGProxy) serverToClient(server, client net.Conn) {
	defer client.Close()
	defer server.Close()
	header := make([]byte, 5)
	var held []byte
	// started: the connection's start-up (authentication, which needs
	// the client's answers) is over, at its first ReadyForQuery.
	inserted, started := false, false
	for {
		if _, err := io.ReadFull(server, header); err != nil {
			return
		}
		msg := make([]byte, 5+int(binary.BigEndian.Uint32(header[1:]))-4)
		copy(msg, header)
		if _, err := io.ReadFull(server, msg[5:]); err != nil {
			return
		}
		for started && p.stalled.Load() {
			time.Sleep(5 * time.Millisecond)
		}
		if !started || (!p.armed.Load() && len(held) == 0) {
			started = started || msg[0] == 'Z'
			if _, err := client.Write(msg); err != nil {
				return
			}
			continue
		}
		held = append(held, msg...)
		if msg[0] == 'C' && strings.HasPrefix(string(msg[5:]), "INSERT") {
			inserted = true
		}
		if msg[0] != 'Z' {
			continue
		}
		if inserted && p.armed.CompareAndSwap(true, false) {
			if p.goAway.CompareAndSwap(true, false) {
				p.Refuse(true)
			}
			return // committed, and the client never hears of it
		}
		if _, err := client.Write(held); err != nil {
			return
		}
		held, inserted = nil, false
	}
}

func (p *PGProxy) close() {
	_ = p.ln.Close()
	p.Refuse(true)
}
