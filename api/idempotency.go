package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream/internal/idempotency"
	"github.com/chartstream/chartstream/internal/logging"
)

// IdempotencyStore remembers commands' responses by Idempotency-Key
// (internal/idempotency).
type IdempotencyStore interface {
	Begin(ctx context.Context, k idempotency.Key, fp []byte) (*idempotency.Response, error)
	Complete(ctx context.Context, k idempotency.Key, fp []byte, r idempotency.Response) error
	Abandon(ctx context.Context, k idempotency.Key) error
}

const headerIdempotencyKey = "Idempotency-Key"

// replayedHeaders are the response headers a replay repeats.
var replayedHeaders = []string{echo.HeaderContentType, echo.HeaderLocation, headerETag, HeaderConsistencyToken}

// idempotent makes a command carrying an Idempotency-Key run once: a retry
// (also while the first is in flight) gets the first response, a reused key
// with another request gets 422. The key is scoped to tenant and user.
// register installs it on commands only, after the route's role check:
// reads ignore a key (a read is safe to retry, and a kept chart would be
// replayed even after the patient's erasure), so replays are command
// results, ids and versions, and reach only callers the route admits.
// Responses below 500 are kept, so a retry sees the same refusal; after a
// 5xx a retry runs again. Without Redis a keyed command gets 503 rather
// than risk running twice.
//
// Redis is the fast path, not the guarantee: the request also gets a
// command id derived from the key and the request's fingerprint, which the
// command's event ids derive from. A retry that runs again after its first
// attempt committed (the process died before the response was kept, Redis
// lost it, the commit's outcome was unknown) finds those events and returns
// the first attempt's result: it is never recorded twice.
func (s *Server) idempotent(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		value := c.Request().Header.Get(headerIdempotencyKey)
		if value == "" {
			return next(c)
		}
		cl := callerOf(c)
		key := idempotency.Key{Tenant: cl.Tenant, Subject: cl.Subject, Value: value}
		if err := key.Validate(); err != nil {
			return err
		}
		req := c.Request()
		body, err := readBody(req)
		if err != nil {
			return err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		fp := fingerprint(req.Method, c.Path(), req.URL.Path, req.URL.RawQuery, req.Header.Get(headerIfMatch), body)

		ctx := withCommandID(req.Context(), commandID(key, fp))
		c.SetRequest(req.WithContext(ctx))
		prior, err := s.deps.Idempotency.Begin(ctx, key, fp)
		if err != nil {
			return err
		}
		if prior != nil {
			for name, v := range prior.Header {
				c.Response().Header().Set(name, v)
			}
			c.Response().Header().Set("Idempotent-Replayed", "true")
			return c.Blob(prior.Status, prior.Header[echo.HeaderContentType], prior.Body)
		}

		rec := &recorder{ResponseWriter: c.Response().Writer}
		c.Response().Writer = rec
		if err := next(c); err != nil {
			c.Error(err) // render now, so the recorder sees the problem body
		}
		status := c.Response().Status
		bg := context.WithoutCancel(ctx)
		if status >= http.StatusInternalServerError {
			if err := s.deps.Idempotency.Abandon(bg, key); err != nil {
				s.deps.Logger.WarnContext(ctx, "idempotency: abandon failed", logging.Error(err))
			}
			return nil
		}
		saved := idempotency.Response{Status: status, Header: map[string]string{}, Body: rec.body.Bytes()}
		for _, name := range replayedHeaders {
			if v := c.Response().Header().Get(name); v != "" {
				saved.Header[name] = v
			}
		}
		if err := s.deps.Idempotency.Complete(bg, key, fp, saved); err != nil {
			s.deps.Logger.WarnContext(ctx, "idempotency: complete failed", logging.Error(err))
		}
		return nil
	}
}

// fingerprint identifies a request for its idempotency key: method, route,
// path, query, If-Match and body. A request without a query hashes as it
// did before the query counted, so its command id, which its events' ids
// derive from, survives an upgrade between a request and its retry. A
// query joins the path after a "?": only a path with an escaped "?" spells
// the same, and both are refused (no id holds one, no command takes a
// query).
func fingerprint(method, route, path, query, ifMatch string, body []byte) []byte {
	if query != "" {
		path += "?" + query
	}
	h := sha256.New()
	for _, part := range []string{method, route, path, ifMatch} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	h.Write(body)
	return h.Sum(nil)
}

// commandNamespace makes command ids from idempotency keys (UUIDv5).
var commandNamespace = uuid.MustParse("4c3f0a0e-6f0d-4d5e-9a57-2a9f7c1d2b11")

// commandID is the id of the command a keyed request carries: the same for
// the same tenant, user, key and request, another for anything else.
func commandID(k idempotency.Key, fp []byte) uuid.UUID {
	name := make([]byte, 0, 256)
	for _, part := range []string{k.Tenant.String(), k.Subject, k.Value} {
		name = append(append(name, part...), 0)
	}
	return uuid.NewSHA1(commandNamespace, append(name, fp...))
}

type commandIDKey struct{}

func withCommandID(ctx context.Context, id uuid.UUID) context.Context {
	return context.WithValue(ctx, commandIDKey{}, id)
}

// commandIDOf is the command id of a keyed request, "" without a key.
func commandIDOf(ctx context.Context) string {
	if id, ok := ctx.Value(commandIDKey{}).(uuid.UUID); ok {
		return id.String()
	}
	return ""
}

// recorder keeps a copy of the response body for the idempotency store.
type recorder struct {
	http.ResponseWriter
	body bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}
