package phi

import (
	"container/list"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
)

// DEKCacheConfig configures a DEKCache. The zero value gives the defaults.
type DEKCacheConfig struct {
	// MaxEntries bounds how many subjects' keys are held; the least
	// recently used is evicted beyond it. Default 10000.
	MaxEntries int
	// TTL is how long a key stays cached after it was loaded, however
	// often it is used. It bounds how long an unwrapped key lives in memory
	// and how long a KEK revoked in the KMS keeps working here.
	// Default 5 minutes.
	TTL time.Duration
	// Now returns the current time. Default time.Now; tests pass a fake.
	Now func() time.Time
}

func (c *DEKCacheConfig) setDefaults() {
	if c.MaxEntries == 0 {
		c.MaxEntries = 10000
	}
	if c.TTL == 0 {
		c.TTL = 5 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem with c, joined.
func (c DEKCacheConfig) Validate() error {
	var errs []error
	if c.MaxEntries < 0 {
		errs = append(errs, errors.New("phi: DEKCacheConfig.MaxEntries must not be negative"))
	}
	if c.TTL < 0 {
		errs = append(errs, errors.New("phi: DEKCacheConfig.TTL must not be negative"))
	}
	return errors.Join(errs...)
}

// DEKCache keeps the Ciphers of recently used data keys, per tenant and data
// subject, so that reading many events does not unwrap (a KMS round trip) or
// expand a key per event. It holds Ciphers, never raw key bytes, and never
// prints them. It is safe for concurrent use.
type DEKCache struct {
	cfg DEKCacheConfig

	mu      sync.Mutex
	entries map[subjectKey]*list.Element // values are *cacheEntry
	lru     *list.List                   // front is the most recently used
	// forgets counts Forget calls. Load caches its result only if none
	// happened while it was loading, so a key unwrapped just before a
	// crypto-shred cannot be cached after it.
	forgets uint64
	// off makes the cache neither serve nor keep keys (see Pause).
	off bool
}

type subjectKey struct {
	tenant  chartstream.TenantID
	subject uuid.UUID
}

type cacheEntry struct {
	key     subjectKey
	cipher  *Cipher
	expires time.Time
}

// NewDEKCache returns an empty cache, or the config's validation errors.
func NewDEKCache(cfg DEKCacheConfig) (*DEKCache, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &DEKCache{cfg: cfg, entries: make(map[subjectKey]*list.Element), lru: list.New()}, nil
}

// Load returns the cached Cipher for the subject's data key in tenant, or
// calls load (typically: read the wrapped DEK, KeyProvider.UnwrapKey,
// NewCipher), caches its result and returns it. load's error is returned as
// is and nothing is cached, so ErrKeyDestroyed from load reaches the caller.
//
// load runs without the cache's lock; concurrent misses for one subject may
// each call it, and the last result is kept (they are the same key). If
// Forget is called for any subject while load runs, the result is returned
// but not cached.
func (c *DEKCache) Load(tenant chartstream.TenantID, subject uuid.UUID, load func() (*Cipher, error)) (*Cipher, error) {
	key := subjectKey{tenant: tenant, subject: subject}
	c.mu.Lock()
	if ciph, ok := c.lookupLocked(key); ok && !c.off {
		c.mu.Unlock()
		return ciph, nil
	}
	generation := c.forgets
	c.mu.Unlock()

	ciph, err := load()
	if err != nil {
		return nil, err
	}
	if ciph == nil {
		return nil, errors.New("phi: DEKCache load returned neither a cipher nor an error")
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forgets == generation && !c.off {
		c.insertLocked(key, ciph)
	}
	return ciph, nil
}

// Pause empties the cache and stops it caching until Resume: while a
// process cannot hear other processes' shreddings (its listener is down), a
// cached key could outlive its subject's erasure.
func (c *DEKCache) Pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off = true
	c.forgets++
	c.entries = make(map[subjectKey]*list.Element)
	c.lru.Init()
}

// Paused reports whether the cache is off (see Pause).
func (c *DEKCache) Paused() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.off
}

// Resume lets the cache keep keys again (see Pause).
func (c *DEKCache) Resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off = false
}

// Forget drops the subject's key from the cache and keeps loads already in
// flight from caching theirs. Call it after destroying the subject's wrapped
// DEK (crypto-shredding), once the deletion is committed, in every process
// (the event store's WatchKeys does, on the shredding's notification).
func (c *DEKCache) Forget(tenant chartstream.TenantID, subject uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forgets++
	if el, ok := c.entries[subjectKey{tenant: tenant, subject: subject}]; ok {
		c.removeLocked(el)
	}
}

// Len returns the number of cached keys, expired ones not yet evicted
// included.
func (c *DEKCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

func (c *DEKCache) lookupLocked(key subjectKey) (*Cipher, bool) {
	el, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	entry := el.Value.(*cacheEntry)
	if !c.cfg.Now().Before(entry.expires) {
		c.removeLocked(el)
		return nil, false
	}
	c.lru.MoveToFront(el)
	return entry.cipher, true
}

func (c *DEKCache) insertLocked(key subjectKey, ciph *Cipher) {
	expires := c.cfg.Now().Add(c.cfg.TTL)
	if el, ok := c.entries[key]; ok {
		entry := el.Value.(*cacheEntry)
		entry.cipher, entry.expires = ciph, expires
		c.lru.MoveToFront(el)
		return
	}
	c.entries[key] = c.lru.PushFront(&cacheEntry{key: key, cipher: ciph, expires: expires})
	for c.lru.Len() > c.cfg.MaxEntries {
		c.removeLocked(c.lru.Back())
	}
}

func (c *DEKCache) removeLocked(el *list.Element) {
	c.lru.Remove(el)
	delete(c.entries, el.Value.(*cacheEntry).key)
}
