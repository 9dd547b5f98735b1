// Package idempotency lets a client retry a clinical command safely: a
// retried request carrying the same Idempotency-Key gets the first
// response replayed instead of appending its events a second time, also
// while the first request is still running.
//
// A key is scoped to tenant and subject. Each key is one Redis hash holding
// the SHA-256 of the request's fingerprint, a state ("pending" while the
// first request runs, "done" after it) and, once done, the response. All
// transitions run as Lua scripts, so two concurrent first requests can never
// both own a key.
//
// Request bodies are never stored, only their fingerprint's hash. Responses
// are: they hold nothing the caller did not already receive, but for a
// clinical command that may still be PHI, so the Redis behind a Store must
// be operated as a PHI store (authentication, TLS, encrypted persistence),
// and callers should store command responses (ids, versions, problem
// documents), never chart reads.
package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chartstream/chartstream"
)

// The messages of the errors Begin returns; API callers see them.
const (
	msgInProgress  = "a request with this idempotency key is still in progress"
	msgReused      = "idempotency key reused with a different request"
	msgUnavailable = "idempotency keys are unavailable"
)

// Response is a completed request's response, as replayed to retries. It is
// stored as JSON.
type Response struct {
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Header holds the headers worth replaying (Content-Type, Location,
	// ETag); the caller chooses them.
	Header map[string]string `json:"header,omitempty"`
	// Body is the response body.
	Body []byte `json:"body,omitempty"`
}

// Store claims, completes and replays idempotency keys in Redis. It is safe
// for concurrent use, and several processes may share one Redis.
type Store struct {
	rdb *redis.Client
	cfg Config
}

// New returns a Store. A nil rdb is a wiring bug and panics; an invalid cfg
// is returned as an error (see Config.Validate).
func New(rdb *redis.Client, cfg Config) (*Store, error) {
	if rdb == nil {
		panic("idempotency: nil redis client")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Store{rdb: rdb, cfg: cfg}, nil
}

// Begin claims k for a request whose fingerprint is fp (the caller hashes
// method, path and body into it; Begin stores only fp's SHA-256).
//
// It returns (nil, nil) when the caller now owns the key and must call
// Complete or Abandon, and (resp, nil) when an earlier request with the same
// key and fingerprint completed: the caller replays resp and does nothing
// else. While an earlier request is in flight, Begin waits up to
// Config.Wait for it; if that request abandons the key or its claim
// expires, the waiting caller becomes the owner.
//
// Errors: those of Key.Validate; EUNPROCESSABLE when the key was used with a
// different fingerprint; ECONFLICT when the earlier request is still in
// flight after Config.Wait, or ctx ends while waiting (wrapping ctx.Err());
// EUNAVAILABLE, wrapping the cause, when Redis fails.
func (s *Store) Begin(ctx context.Context, k Key, fp []byte) (*Response, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	key, sum := k.redisKey(s.cfg.Prefix), hash(fp)
	deadline := time.Now().Add(s.cfg.Wait)
	for waited := false; ; waited = true {
		res, err := claimScript.Run(ctx, s.rdb, []string{key}, sum, s.cfg.InFlightTTL.Milliseconds()).Slice()
		switch {
		case err != nil && ctx.Err() != nil && waited:
			// The caller's deadline ended the wait, inside a Redis call
			// rather than between two: still a wait that ran out.
			return nil, &chartstream.Error{Code: chartstream.ECONFLICT, Message: msgInProgress, Err: ctx.Err()}
		case err != nil && ctx.Err() != nil:
			return nil, fmt.Errorf("idempotency: %w", ctx.Err())
		case err != nil:
			return nil, unavailable(err)
		}
		if len(res) == 0 {
			return nil, nil // claimed
		}
		if res[0] != sum {
			return nil, chartstream.Errorf(chartstream.EUNPROCESSABLE, msgReused)
		}
		if res[1] == stateDone {
			return decodeResponse(res[2])
		}
		wait := min(s.cfg.PollInterval, time.Until(deadline))
		if wait <= 0 {
			return nil, chartstream.Errorf(chartstream.ECONFLICT, msgInProgress)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, &chartstream.Error{Code: chartstream.ECONFLICT, Message: msgInProgress, Err: err}
		}
	}
}

// Complete stores r as the response to replay for k for Config.TTL. The
// caller must own k (Begin returned (nil, nil)) and pass the same fp.
//
// If the claim expired meanwhile, r is stored all the same, so retries
// replay it rather than run the command again; if a retry with the same
// fingerprint already completed, its response is kept and Complete returns
// nil. Errors: those of Key.Validate; ECONFLICT when a request with a
// different fingerprint has claimed k since; EUNAVAILABLE, wrapping the
// cause, when Redis fails.
func (s *Store) Complete(ctx context.Context, k Key, fp []byte, r Response) error {
	if err := k.Validate(); err != nil {
		return err
	}
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("idempotency: encode response: %w", err)
	}
	res, err := completeScript.Run(ctx, s.rdb, []string{k.redisKey(s.cfg.Prefix)}, hash(fp), body, s.cfg.TTL.Milliseconds()).Text()
	if err != nil {
		return unavailable(err)
	}
	if res == "mismatch" {
		return chartstream.Errorf(chartstream.ECONFLICT, "idempotency key was claimed by a different request")
	}
	return nil
}

// Abandon releases the caller's claim on k without storing a response, so
// that a retry runs the request again: for failures the client should be
// able to retry (a 5xx, a lost dependency). A key that already completed is
// left alone. Errors: those of Key.Validate; EUNAVAILABLE, wrapping the
// cause, when Redis fails.
func (s *Store) Abandon(ctx context.Context, k Key) error {
	if err := k.Validate(); err != nil {
		return err
	}
	if err := abandonScript.Run(ctx, s.rdb, []string{k.redisKey(s.cfg.Prefix)}).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

func decodeResponse(v any) (*Response, error) {
	raw, ok := v.(string)
	if !ok {
		return nil, errors.New("idempotency: completed key has no response")
	}
	var r Response
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return nil, fmt.Errorf("idempotency: decode stored response: %w", err)
	}
	return &r, nil
}

// sleep waits d or until ctx ends, whichever is first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func unavailable(cause error) *chartstream.Error {
	return &chartstream.Error{Code: chartstream.EUNAVAILABLE, Message: msgUnavailable, Err: cause}
}
