package chartstream

import (
	"errors"
	"fmt"
)

// Error codes. The API maps each to one HTTP status (see api/problem.go);
// everything that is not a *Error is EINTERNAL.
const (
	EINVALID       = "invalid"        // 400: malformed or invalid input
	EUNAUTHORIZED  = "unauthorized"   // 401: missing or invalid credentials
	EFORBIDDEN     = "forbidden"      // 403: role not allowed, tenant suspended
	ENOTFOUND      = "not_found"      // 404: unknown id, or another tenant's id
	ECONFLICT      = "conflict"       // 409: concurrency or invariant conflict
	EPRECONDITION  = "precondition"   // 412: If-Match did not match
	ETOOLARGE      = "too_large"      // 413: request or event over its limit
	EUNSUPPORTED   = "unsupported"    // 415: wrong content type
	EUNPROCESSABLE = "unprocessable"  // 422: a domain rule was broken
	ERATELIMITED   = "rate_limited"   // 429: over the tenant's rate limit
	EUNAVAILABLE   = "unavailable"    // 503: a dependency is down
	ECOMMITUNKNOWN = "commit_unknown" // 503: a write's commit may or may not have happened; retry with the same Idempotency-Key
	EINTERNAL      = "internal"       // 500: a bug or an unexpected failure
)

// ErrConcurrentWrite is the cause (errors.Is) of an ECONFLICT from a write
// whose stream another writer changed first: a decision taken again on the
// new events may succeed. Other conflicts (a unique value taken, an id
// recorded) would not.
var ErrConcurrentWrite = errors.New("another writer changed the stream first")

// Error is the platform's error value. Message is shown to API callers, so it
// must never contain PHI (names, birth dates, contact details, free text).
type Error struct {
	// Code is one of the E* constants.
	Code string
	// Message is a human-readable, PHI-free explanation.
	Message string
	// Fields lists per-field validation problems, if any.
	Fields []FieldError
	// Err is an optional underlying cause; it is logged, never shown.
	Err error
}

// FieldError is one validation problem with one input field. Reason must be
// PHI-free: say what is wrong, never echo the value.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns a *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EINVALID error listing the given field problems.
func Invalid(fields ...FieldError) *Error {
	return &Error{Code: EINVALID, Message: "the request is invalid", Fields: fields}
}

// ErrorCode returns the code of the first *Error in err's chain, "" for nil
// and EINTERNAL for anything else.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the PHI-free message of the first *Error in err's
// chain, or "internal error" for anything else.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
