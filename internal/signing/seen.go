package signing

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
)

// seenCapacity bounds the signatures a Verifier remembers: a few seconds
// of a busy platform's messages, 32 bytes each.
const seenCapacity = 1 << 16

// seen remembers the last signatures that verified, by a digest of the
// key id, the signature and the message together. In one worker process
// the projector, the analytics projector and the de-identifier each
// verify every message of the clinical stream: Ed25519 verification was
// a quarter of the process's CPU under load, and a SHA-256 of what was
// verified already costs a few percent of one. The digest binds all three,
// so a remembered signature never vouches for another message or key.
// The consumers take each message at the same moment, so a verification
// in flight is waited for rather than repeated.
type seen struct {
	mu      sync.Mutex
	set     map[[sha256.Size]byte]struct{}
	ring    [][sha256.Size]byte
	next    int
	pending map[[sha256.Size]byte]chan struct{}
}

func newSeen() *seen {
	return &seen{set: make(map[[sha256.Size]byte]struct{}), ring: make([][sha256.Size]byte, 0, seenCapacity),
		pending: make(map[[sha256.Size]byte]chan struct{})}
}

// verify reports whether check holds for d, running check at most once
// for concurrent callers and never again once it held. A check that
// failed is not remembered: the next caller runs it again.
func (s *seen) verify(d [sha256.Size]byte, check func() bool) bool {
	s.mu.Lock()
	if _, ok := s.set[d]; ok {
		s.mu.Unlock()
		return true
	}
	if wait, ok := s.pending[d]; ok {
		s.mu.Unlock()
		<-wait
		if s.has(d) {
			return true
		}
		return check()
	}
	done := make(chan struct{})
	s.pending[d] = done
	s.mu.Unlock()
	ok := check()
	s.mu.Lock()
	if ok {
		s.addLocked(d)
	}
	delete(s.pending, d)
	close(done)
	s.mu.Unlock()
	return ok
}

// digest is what a verified (key id, signature, message) is remembered by;
// lengths separate the parts.
func digest(id string, sig, msg []byte) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, part := range [][]byte{[]byte(id), sig} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	h.Write(msg)
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

func (s *seen) has(d [sha256.Size]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.set[d]
	return ok
}

// add remembers d, forgetting the oldest beyond capacity.
func (s *seen) add(d [sha256.Size]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addLocked(d)
}

func (s *seen) addLocked(d [sha256.Size]byte) {
	if _, ok := s.set[d]; ok {
		return
	}
	if len(s.ring) < seenCapacity {
		s.ring = append(s.ring, d)
	} else {
		delete(s.set, s.ring[s.next])
		s.ring[s.next] = d
		s.next = (s.next + 1) % seenCapacity
	}
	s.set[d] = struct{}{}
}

// size is how many signatures are remembered (for tests).
func (s *seen) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.set)
}
