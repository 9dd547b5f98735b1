// Package logging builds chartstream's structured JSON logger. Values the
// request middleware puts in the context (request id, tenant) appear on every
// line logged with that context, so a request can be followed end to end.
//
// Never log PHI: no names, birth dates, contact details, free text, and never
// a whole command or payload.
package logging

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	tenantKey
)

// WithRequestID returns ctx carrying the request id for log lines.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// WithTenant returns ctx carrying the tenant id for log lines. It is for logs
// only: code that needs the tenant takes it as a parameter.
func WithTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, tenantKey, tenant)
}

// ParseLevel turns "debug", "info", "warn" or "error" into a slog.Level.
func ParseLevel(s string) (slog.Level, bool) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, false
	}
	return l, true
}

// New returns a JSON logger writing to w at the given level.
func New(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(contextHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})})
}

// contextHandler adds the context's request id and tenant to each record.
type contextHandler struct{ slog.Handler }

// Handle adds what the record does not say itself: a JSON line with a key
// twice is read differently by different log pipelines.
func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	var hasID, hasTenant bool
	r.Attrs(func(a slog.Attr) bool {
		hasID, hasTenant = hasID || a.Key == "request_id", hasTenant || a.Key == "tenant"
		return true
	})
	if id := RequestID(ctx); id != "" && !hasID {
		r.AddAttrs(slog.String("request_id", id))
	}
	if t, _ := ctx.Value(tenantKey).(string); t != "" && !hasTenant {
		r.AddAttrs(slog.String("tenant", t))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}

// pgError is the part of *pgconn.PgError the redaction needs, declared
// here so logging does not depend on the driver.
type pgError interface {
	error
	SQLState() string
}

// Error returns an attribute for err that is safe to log. A database error
// anywhere in err's chain can quote the values of a row (a birth date in
// "invalid input syntax for type date"), so then only its SQLSTATE is
// logged, never a message; other errors are logged as they are.
func Error(err error) slog.Attr {
	var pg pgError
	if errors.As(err, &pg) {
		return slog.String("error", "database error, SQLSTATE "+pg.SQLState()+" (message withheld: it may quote data)")
	}
	if err == nil {
		return slog.String("error", "")
	}
	return slog.String("error", err.Error())
}
