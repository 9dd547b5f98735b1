package signing

import (
	"crypto/sha256"
	"encoding/binary"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func mustPair(tb testing.TB) (*Signer, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "k")
	if _, err := CreateKeyFiles(path); err != nil {
		tb.Fatal(err)
	}
	s, err := LoadSigner(path)
	if err != nil {
		tb.Fatal(err)
	}
	return s, path + ".pub"
}

// A signature remembered as verified vouches for its own message and key
// only: the same signature over another message, or relabelled with
// another trusted key's id, is still refused.
func TestARememberedSignatureVouchesForNothingElse(t *testing.T) {
	t.Parallel()
	a, aPub := mustPair(t)
	_, bPub := mustPair(t)
	v, err := LoadVerifier(aPub, bPub)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte(`{"event":"patient.registered"}`)
	sig := a.Sign(msg)
	for range 2 { // the second from memory
		if err := v.Verify(msg, sig); err != nil {
			t.Fatalf("a good signature: %v", err)
		}
	}
	var bID string
	for id := range v.keys {
		if id != a.id {
			bID = id
		}
	}
	_, b64, _ := strings.Cut(sig, ":")
	for name, tc := range map[string]struct {
		msg []byte
		sig string
	}{
		"another message":  {[]byte(`{"event":"patient.erased"}`), sig},
		"a longer message": {append(append([]byte{}, msg...), ' '), sig},
		"another key's id": {msg, bID + ":" + b64},
		"a truncated tail": {msg[:len(msg)-1], sig},
	} {
		if v.Verify(tc.msg, tc.sig) == nil {
			t.Errorf("%s: accepted on the strength of a remembered signature", name)
		}
	}
}

// The memory holds a bounded number of signatures, forgetting the oldest.
func TestSeenIsBounded(t *testing.T) {
	t.Parallel()
	s := newSeen()
	var first [sha256.Size]byte
	for i := range seenCapacity + 100 {
		var d [sha256.Size]byte
		binary.BigEndian.PutUint64(d[:], uint64(i))
		if i == 0 {
			first = d
		}
		s.add(d)
	}
	if n := s.size(); n != seenCapacity {
		t.Errorf("remembers %d signatures, want %d", n, seenCapacity)
	}
	if s.has(first) {
		t.Error("the oldest signature is still remembered")
	}
}

// BenchmarkVerify: a message's first verification, and the next
// consumer's in the same process.
func BenchmarkVerify(b *testing.B) {
	s, pub := mustPair(b)
	v, err := LoadVerifier(pub)
	if err != nil {
		b.Fatal(err)
	}
	const n = 4096
	msgs, sigs := make([][]byte, n), make([]string, n)
	for i := range n {
		msgs[i] = make([]byte, 1024)
		binary.BigEndian.PutUint64(msgs[i], uint64(i))
		sigs[i] = s.Sign(msgs[i])
	}
	b.Run("first", func(b *testing.B) {
		fresh := &Verifier{keys: v.keys, seen: newSeen()}
		for i := 0; b.Loop(); i++ {
			if i%n == 0 {
				fresh = &Verifier{keys: v.keys, seen: newSeen()}
			}
			if err := fresh.Verify(msgs[i%n], sigs[i%n]); err != nil {
				b.Fatal(err)
			}
		}
	})
	msg := msgs[0]
	sig := sigs[0]
	b.Run("again", func(b *testing.B) {
		for b.Loop() {
			if err := v.Verify(msg, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Consumers that take one message at the same moment verify it once: the
// others wait for that verification. A failed one is not remembered.
func TestConcurrentVerificationsOfOneMessageRunOnce(t *testing.T) {
	t.Parallel()
	s := newSeen()
	for _, holds := range []bool{true, false} {
		var d [sha256.Size]byte
		d[0] = map[bool]byte{true: 1, false: 2}[holds]
		var runs atomic.Int32
		start := make(chan struct{})
		results := make(chan bool, 8)
		for range 8 {
			go func() {
				<-start
				results <- s.verify(d, func() bool {
					runs.Add(1)
					time.Sleep(20 * time.Millisecond)
					return holds
				})
			}()
		}
		close(start)
		for range 8 {
			if got := <-results; got != holds {
				t.Fatalf("a verification that %v answered %v", holds, got)
			}
		}
		if n := runs.Load(); holds && n != 1 {
			t.Errorf("a good signature verified %d times by 8 concurrent consumers, want once", n)
		}
		if s.has(d) != holds {
			t.Errorf("remembered %v, want %v", s.has(d), holds)
		}
	}
}
