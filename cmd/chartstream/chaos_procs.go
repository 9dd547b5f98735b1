package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// child is a process chaos starts and may kill and start again with the
// same arguments; each incarnation appends its stderr (and stdout) to the
// same log file. It runs in its own process group, so that a kill reaches
// whatever it started and nothing outlives chaos.
type child struct {
	name    string
	path    string
	args    []string
	env     []string
	logPath string
	// onLine, when set, sees every line the process writes.
	onLine func(line []byte)

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current incarnation has exited
}

// start starts a new incarnation. It fails if the current one still runs.
func (c *child) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		select {
		case <-c.done:
		default:
			return fmt.Errorf("%s is still running", c.name)
		}
	}
	f, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s log: %w", c.name, err)
	}
	tap := &lineTap{w: f, onLine: c.onLine}
	cmd := exec.Command(c.path, c.args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = c.env, tap, tap
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", c.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		tap.flush()
		f.Close()
		close(done)
	}()
	c.cmd, c.done = cmd, done
	return nil
}

// pid is the current incarnation's process id, 0 before the first start.
func (c *child) pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// kill sends SIGKILL to the process group and waits for the exit.
func (c *child) kill() {
	c.signal(syscall.SIGKILL, 0)
}

// stop asks the process group to stop (SIGTERM) and kills it after grace.
func (c *child) stop(grace time.Duration) {
	c.signal(syscall.SIGTERM, grace)
}

func (c *child) signal(sig syscall.Signal, grace time.Duration) {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	if sig != syscall.SIGKILL {
		select {
		case <-done:
			return
		case <-time.After(grace):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	<-done
}

// exited reports whether the current incarnation has exited.
func (c *child) exited() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		return true
	}
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// lineTap writes a process's output to w and hands each complete line to
// onLine.
type lineTap struct {
	mu      sync.Mutex
	w       *os.File
	onLine  func([]byte)
	partial []byte
}

func (t *lineTap) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, err := t.w.Write(p)
	if t.onLine != nil {
		t.partial = append(t.partial, p...)
		for {
			i := bytes.IndexByte(t.partial, '\n')
			if i < 0 {
				break
			}
			t.onLine(t.partial[:i])
			t.partial = t.partial[i+1:]
		}
	}
	return n, err
}

func (t *lineTap) flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.onLine != nil && len(t.partial) > 0 {
		t.onLine(t.partial)
	}
	t.partial = nil
}

// leaseTracker follows, from the workers' JSON logs, which work process
// holds the relay lease: the last one that logged "worker active" for the
// relay and has not lost the lease or been killed since.
type leaseTracker struct {
	mu     sync.Mutex
	active int // index of the active worker, -1 when unknown
	since  time.Time
}

func newLeaseTracker() *leaseTracker { return &leaseTracker{active: -1} }

// Messages the workers log about their lease (workers/lease.go).
const (
	logWorkerActive   = "worker active"
	logWorkerLost     = "worker lost its lease connection"
	logWorkerStopped  = "worker stopped; retrying"
	logRelayComponent = "relay"
)

// observe reads one log line of worker i.
func (l *leaseTracker) observe(i int, line []byte) {
	if !bytes.Contains(line, []byte(`"worker"`)) {
		return
	}
	var rec struct {
		Msg    string `json:"msg"`
		Worker string `json:"worker"`
	}
	if json.Unmarshal(line, &rec) != nil || rec.Worker != logRelayComponent {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch rec.Msg {
	case logWorkerActive:
		l.active, l.since = i, time.Now()
	case logWorkerLost, logWorkerStopped:
		if l.active == i {
			l.active = -1
		}
	}
}

// killed forgets worker i as the active one.
func (l *leaseTracker) killed(i int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active == i {
		l.active = -1
	}
}

// wait returns the active worker, waiting up to timeout for one.
func (l *leaseTracker) wait(ctx context.Context, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		l.mu.Lock()
		i := l.active
		l.mu.Unlock()
		if i >= 0 {
			return i, nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("no worker took the relay lease within %s", timeout)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return -1, err
		}
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitTCP waits until addr accepts connections, or timeout.
func waitTCP(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not accept connections within %s", addr, timeout)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitReady waits until the API at base answers /readyz with 200, or
// timeout; exited stops the wait early when the process died.
func waitReady(ctx context.Context, base string, timeout time.Duration, exited func() bool) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if exited() {
			return errors.New("exited before it was ready")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s", timeout)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
