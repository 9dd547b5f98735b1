package testkit

import (
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// PGProxy is a TCP proxy in front of PostgreSQL that loses answers the way
// a network does: armed with CutAfterCommit, it lets the next pipelined
// write (the next exchange of three or more statements up to a Sync, on any
// connection: an event store append, whose statements are the tenant, the
// stream locks and the insert) run and commit on the server, swallows what
// the server answers, and cuts the connection once the server said it is
// ready again (ReadyForQuery, after the commit). The client then cannot know
// whether its commit happened. With Refuse, it also turns new connections
// away and cuts the existing ones, as a database that is gone.
type PGProxy struct {
	tb       testing.TB
	ln       net.Listener
	target   string
	armed    atomic.Bool
	goAway   atomic.Bool // refuse from the cut on
	refusing atomic.Bool
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

// CutAfterCommit arms the proxy for the next pipelined write (see
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
		var cut atomic.Bool
		go p.clientToServer(client, server, &cut)
		go p.serverToClient(server, client, &cut)
	}
}

func (p *PGProxy) track(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		p.conns[c] = true
	}
}

// clientToServer forwards the client's messages, marking the connection
// for the cut when an armed proxy sees a pipelined write go by.
func (p *PGProxy) clientToServer(client, server net.Conn, cut *atomic.Bool) {
	defer server.Close()
	// The startup message has no type byte: a length, then the rest.
	var length [4]byte
	if _, err := io.ReadFull(client, length[:]); err != nil {
		return
	}
	startup := make([]byte, int(binary.BigEndian.Uint32(length[:]))-4)
	if _, err := io.ReadFull(client, startup); err != nil {
		return
	}
	if _, err := server.Write(append(length[:], startup...)); err != nil {
		return
	}
	header := make([]byte, 5)
	executes := 0
	for {
		if _, err := io.ReadFull(client, header); err != nil {
			return
		}
		body := make([]byte, int(binary.BigEndian.Uint32(header[1:]))-4)
		if _, err := io.ReadFull(client, body); err != nil {
			return
		}
		switch header[0] {
		case 'E':
			executes++
		case 'S':
			if executes >= 3 && p.armed.CompareAndSwap(true, false) {
				cut.Store(true)
			}
			executes = 0
		}
		if _, err := server.Write(append(header, body...)); err != nil {
			return
		}
	}
}

// serverToClient forwards the server's messages, or, on a connection
// marked for the cut, swallows them up to ReadyForQuery and then closes
// both ends.
func (p *PGProxy) serverToClient(server, client net.Conn, cut *atomic.Bool) {
	defer client.Close()
	defer server.Close()
	header := make([]byte, 5)
	for {
		if _, err := io.ReadFull(server, header); err != nil {
			return
		}
		body := make([]byte, int(binary.BigEndian.Uint32(header[1:]))-4)
		if _, err := io.ReadFull(server, body); err != nil {
			return
		}
		if cut.Load() {
			if header[0] == 'Z' {
				if p.goAway.CompareAndSwap(true, false) {
					p.Refuse(true)
				}
				return // committed, and the client never hears of it
			}
			continue
		}
		if _, err := client.Write(append(header, body...)); err != nil {
			return
		}
	}
}

func (p *PGProxy) close() {
	_ = p.ln.Close()
	p.Refuse(true)
}
