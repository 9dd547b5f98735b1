package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/labstack/echo/v4"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/logging"
)

// documentedCodes reads the error codes and the HTTP status each one is
// documented to map to ("EINVALID = "invalid" // 400: ...") from the root
// package's errors.go, so a code added there without a mapping here fails.
func documentedCodes(t *testing.T) map[string]int {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "../errors.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	statusComment := regexp.MustCompile(`^(\d{3}):`)
	codes := map[string]int{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if len(vs.Names) != 1 || !strings.HasPrefix(vs.Names[0].Name, "E") || len(vs.Values) != 1 {
				continue
			}
			lit, ok := vs.Values[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				continue
			}
			code, _ := strconv.Unquote(lit.Value)
			m := statusComment.FindStringSubmatch(strings.TrimSpace(vs.Comment.Text()))
			if m == nil {
				t.Fatalf("errors.go: %s has no \"// NNN: ...\" status comment", vs.Names[0].Name)
			}
			codes[code], _ = strconv.Atoi(m[1])
		}
	}
	if len(codes) < 10 {
		t.Fatalf("found only %d error codes in errors.go; did its layout change?", len(codes))
	}
	return codes
}

func TestProblemForEveryDocumentedCode(t *testing.T) {
	t.Parallel()
	for code, status := range documentedCodes(t) {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			p := problemFor(chartstream.Errorf(code, "safe message"))
			if p.Status != status {
				t.Errorf("status %d, want %d", p.Status, status)
			}
			if p.Type != ProblemType(code) || p.Title == "" {
				t.Errorf("type %q title %q, want type %q and a title", p.Type, p.Title, ProblemType(code))
			}
			wantDetail := "safe message"
			if code == chartstream.EINTERNAL {
				wantDetail = "internal error"
			}
			if p.Detail != wantDetail {
				t.Errorf("detail %q, want %q", p.Detail, wantDetail)
			}
		})
	}
}

func TestProblemFor(t *testing.T) {
	t.Parallel()
	fields := []chartstream.FieldError{{Field: "birth_date", Reason: "must be a date"}, {Field: "name", Reason: "required"}}
	const secret = "password=hunter2 host=db.internal"
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
		wantDetail string
		wantFields []chartstream.FieldError
	}{
		{"wrapped domain error", fmt.Errorf("register patient: %w", chartstream.Errorf(chartstream.ECONFLICT, "stream moved on")),
			http.StatusConflict, chartstream.ECONFLICT, "stream moved on", nil},
		{"twice wrapped domain error", fmt.Errorf("a: %w", fmt.Errorf("b: %w", chartstream.Errorf(chartstream.ENOTFOUND, "no such patient"))),
			http.StatusNotFound, chartstream.ENOTFOUND, "no such patient", nil},
		{"domain error hides its cause", &chartstream.Error{Code: chartstream.EUNAVAILABLE, Message: "try again", Err: errors.New(secret)},
			http.StatusServiceUnavailable, chartstream.EUNAVAILABLE, "try again", nil},
		{"field errors", chartstream.Invalid(fields...),
			http.StatusBadRequest, chartstream.EINVALID, "the request is invalid", fields},
		{"wrapped field errors", fmt.Errorf("decode: %w", chartstream.Invalid(fields...)),
			http.StatusBadRequest, chartstream.EINVALID, "the request is invalid", fields},
		{"arbitrary error", errors.New(secret),
			http.StatusInternalServerError, chartstream.EINTERNAL, "internal error", nil},
		{"wrapped arbitrary error", fmt.Errorf("query: %w", errors.New(secret)),
			http.StatusInternalServerError, chartstream.EINTERNAL, "internal error", nil},
		{"internal domain error", &chartstream.Error{Code: chartstream.EINTERNAL, Message: secret, Fields: fields},
			http.StatusInternalServerError, chartstream.EINTERNAL, "internal error", nil},
		{"unknown code", chartstream.Errorf("no_such_code", secret),
			http.StatusInternalServerError, chartstream.EINTERNAL, "internal error", nil},
		{"echo 413", echo.ErrStatusRequestEntityTooLarge,
			http.StatusRequestEntityTooLarge, chartstream.ETOOLARGE, "Request Entity Too Large", nil},
		{"echo 415", echo.ErrUnsupportedMediaType,
			http.StatusUnsupportedMediaType, chartstream.EUNSUPPORTED, "Unsupported Media Type", nil},
		{"echo 404", echo.ErrNotFound,
			http.StatusNotFound, chartstream.ENOTFOUND, "Not Found", nil},
		{"echo 405", echo.ErrMethodNotAllowed,
			http.StatusMethodNotAllowed, codeMethodNotAllowed, "Method Not Allowed", nil},
		{"wrapped echo 404", fmt.Errorf("route: %w", echo.ErrNotFound),
			http.StatusNotFound, chartstream.ENOTFOUND, "Not Found", nil},
		{"echo error message is not shown", echo.NewHTTPError(http.StatusBadRequest, secret),
			http.StatusBadRequest, chartstream.EINVALID, "Bad Request", nil},
		{"echo 500 hides its cause", echo.NewHTTPError(http.StatusInternalServerError).SetInternal(errors.New(secret)),
			http.StatusInternalServerError, chartstream.EINTERNAL, "internal error", nil},
		{"echo 502", echo.ErrBadGateway,
			http.StatusInternalServerError, chartstream.EINTERNAL, "internal error", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := problemFor(tt.err)
			if p.Status != tt.wantStatus || p.Type != ProblemType(tt.wantCode) {
				t.Errorf("status %d type %q, want %d %q", p.Status, p.Type, tt.wantStatus, ProblemType(tt.wantCode))
			}
			if p.Detail != tt.wantDetail {
				t.Errorf("detail %q, want %q", p.Detail, tt.wantDetail)
			}
			if !reflect.DeepEqual(p.Errors, tt.wantFields) {
				t.Errorf("field errors %v, want %v", p.Errors, tt.wantFields)
			}
			body, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(body), "hunter2") {
				t.Errorf("problem leaks the error's text: %s", body)
			}
		})
	}
}

// newTestServer returns a server whose log goes to the returned buffer.
func newTestServer(t *testing.T, ready ...ReadinessCheck) (*Server, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	s, err := NewServer(Deps{Logger: logging.New(&logs, slog.LevelInfo), Ready: ready}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s, &logs
}

func serve(s *Server, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func decodeProblem(t *testing.T, rec *httptest.ResponseRecorder) Problem {
	t.Helper()
	if ct := rec.Header().Get(echo.HeaderContentType); ct != ProblemContentType {
		t.Errorf("Content-Type %q, want %q", ct, ProblemContentType)
	}
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body %q: %v", rec.Body, err)
	}
	return p
}

func TestErrorHandlerRendersInternalErrorWithoutDetails(t *testing.T) {
	t.Parallel()
	s, logs := newTestServer(t)
	s.echo.GET("/boom", func(echo.Context) error { return fmt.Errorf("query: %w", errors.New("password=hunter2")) })

	rec := serve(s, http.MethodGet, "/boom")
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", rec.Code)
	}
	p := decodeProblem(t, rec)
	id := rec.Header().Get(echo.HeaderXRequestID)
	want := Problem{Type: ProblemType(chartstream.EINTERNAL), Title: "Internal error", Status: 500,
		Detail: "internal error", Instance: "/boom", RequestID: id}
	if id == "" || !reflect.DeepEqual(p, want) {
		t.Errorf("problem %+v (X-Request-ID %q), want %+v", p, id, want)
	}
	if strings.Contains(rec.Body.String(), "hunter2") {
		t.Errorf("500 body leaks the error: %s", rec.Body)
	}
	// The details go to the log instead, tied to the request id.
	if !strings.Contains(logs.String(), "hunter2") || !strings.Contains(logs.String(), id) {
		t.Errorf("log lacks the error or the request id %s:\n%s", id, logs)
	}
}

func TestErrorHandlerPanicIsInternalError(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t)
	s.echo.GET("/panic", func(echo.Context) error { panic("password=hunter2") })

	rec := serve(s, http.MethodGet, "/panic")
	p := decodeProblem(t, rec)
	if rec.Code != http.StatusInternalServerError || p.Detail != "internal error" || strings.Contains(rec.Body.String(), "hunter2") {
		t.Errorf("panic rendered as %d %s", rec.Code, rec.Body)
	}
}

func TestErrorHandlerLeavesCommittedResponse(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t)
	s.echo.GET("/partial", func(c echo.Context) error {
		if err := c.String(http.StatusOK, "partial"); err != nil {
			return err
		}
		return chartstream.Errorf(chartstream.ECONFLICT, "too late")
	})

	rec := serve(s, http.MethodGet, "/partial")
	if rec.Code != http.StatusOK || rec.Body.String() != "partial" {
		t.Errorf("got %d %q, want the committed 200 \"partial\" untouched", rec.Code, rec.Body)
	}
}

func TestErrorHandlerHEADHasNoBody(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t)
	rec := serve(s, http.MethodHead, "/nowhere")
	if rec.Code != http.StatusNotFound || rec.Body.Len() != 0 {
		t.Errorf("HEAD unknown route: %d with %d body bytes, want 404 and none", rec.Code, rec.Body.Len())
	}
}

func TestBodyLimitIsProblem413(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s, err := NewServer(Deps{Logger: logging.New(&logs, slog.LevelInfo)}, Config{BodyLimit: "1K"})
	if err != nil {
		t.Fatal(err)
	}
	s.echo.POST("/upload", func(c echo.Context) error {
		_, err := c.FormParams()
		return err
	})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/upload", strings.NewReader(strings.Repeat("a=b&", 1024)))
	req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationForm)
	s.Handler().ServeHTTP(rec, req)
	if p := decodeProblem(t, rec); rec.Code != http.StatusRequestEntityTooLarge || p.Type != ProblemType(chartstream.ETOOLARGE) {
		t.Errorf("got %d %+v, want 413 %s", rec.Code, p, ProblemType(chartstream.ETOOLARGE))
	}
}

// A database that is down, overloaded or timing out is a 503 the client
// may retry, not a 500.
func TestProblemForUnavailableDatabase(t *testing.T) {
	t.Parallel()
	for name, err := range map[string]error{
		"statement timeout":    fmt.Errorf("append: %w", &pgconn.PgError{Code: "57014"}),
		"too many connections": &pgconn.PgError{Code: "53300"},
		"connection failure":   &pgconn.PgError{Code: "08006"},
		"network":              fmt.Errorf("read stream: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}),
	} {
		if p := problemFor(err); p.Status != http.StatusServiceUnavailable || p.Type != ProblemType(chartstream.EUNAVAILABLE) {
			t.Errorf("%s: %d %s, want 503", name, p.Status, p.Type)
		}
	}
	if p := problemFor(&pgconn.PgError{Code: "23502"}); p.Status != http.StatusInternalServerError {
		t.Errorf("a not-null violation is a bug: %d, want 500", p.Status)
	}
}
