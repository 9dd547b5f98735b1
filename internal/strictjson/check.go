// Package strictjson decodes JSON that must be taken exactly as sent or
// not at all: clinical input is recorded for ever, so nothing is repaired.
// encoding/json on its own accepts a value followed by more data, replaces
// invalid UTF-8 and unpaired surrogate escapes with U+FFFD, keeps the last
// of duplicate member names and matches member names in any case; each of
// those would change what a clinician sent before it is recorded.
//
// Every error is an EINVALID *chartstream.Error. Its field is a path such as
// name.given[1]; its reason never quotes the input, so it carries no PHI.
package strictjson

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/chartstream/chartstream"
)

// Default limits: what a clinical command or search ever needs, with room.
const (
	// DefaultMaxDepth bounds the nesting of objects and arrays.
	DefaultMaxDepth = 32
	// DefaultMaxString bounds every string and member name, in characters
	// (Unicode code points, as JSON Schema's maxLength counts).
	DefaultMaxString = 1000
	// DefaultMaxItems bounds every array's items and every object's members.
	DefaultMaxItems = 100
)

// Limits bound a document. A zero field takes its default.
type Limits struct {
	// MaxDepth bounds nesting: a document may hold objects and arrays this
	// many levels deep. Default DefaultMaxDepth.
	MaxDepth int
	// MaxString bounds strings and member names, in characters. Default
	// DefaultMaxString.
	MaxString int
	// MaxItems bounds arrays' items and objects' members. Default
	// DefaultMaxItems.
	MaxItems int
}

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxString <= 0 {
		l.MaxString = DefaultMaxString
	}
	if l.MaxItems <= 0 {
		l.MaxItems = DefaultMaxItems
	}
	return l
}

// Check reports whether data is exactly one JSON value (RFC 8259) that
// needs no repair: UTF-8 throughout, no unpaired surrogate escape, no
// member name twice in an object (compared after unescaping), no NUL
// (which nothing downstream can store), and within lim. It returns nil or an EINVALID *chartstream.Error naming where the
// first problem is.
func Check(data []byte, lim Limits) error {
	s := scanner{data: data, lim: lim.withDefaults()}
	s.space()
	if err := s.value(nil, 1); err != nil {
		return err
	}
	s.space()
	if s.i < len(s.data) {
		return problem(nil, "must be one JSON value with nothing after it")
	}
	return nil
}

// path is where a value is: member names and [index] segments.
type path []string

func (p path) member(name string) path {
	if !plainName(name) {
		name = "?" // not echoed: it may be anything at all
	}
	return append(p[:len(p):len(p)], "."+name)
}

func (p path) index(i int) path {
	return append(p[:len(p):len(p)], "["+strconv.Itoa(i)+"]")
}

func (p path) String() string { return strings.TrimPrefix(strings.Join(p, ""), ".") }

// plainName tells member names worth naming in an error: those shaped
// like the API's own, short snake_case ASCII. Any other may be anything, a
// patient's name included, so it is not repeated.
func plainName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// problem is the error for a value at p; the whole document when p is
// empty.
func problem(p path, reason string) error {
	if len(p) == 0 {
		return chartstream.Errorf(chartstream.EINVALID, "the body %s", reason)
	}
	return chartstream.Invalid(chartstream.FieldError{Field: p.String(), Reason: reason})
}

type scanner struct {
	data []byte
	i    int
	lim  Limits
}

func (s *scanner) peek() byte {
	if s.i < len(s.data) {
		return s.data[s.i]
	}
	return 0
}

func (s *scanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func syntax(p path) error { return problem(p, "is not valid JSON") }

func (s *scanner) value(p path, depth int) error {
	switch c := s.peek(); {
	case c == '{':
		return s.object(p, depth)
	case c == '[':
		return s.array(p, depth)
	case c == '"':
		return s.str(p, "")
	case c == '-' || c >= '0' && c <= '9':
		return s.number(p)
	case c == 't':
		return s.word(p, "true")
	case c == 'f':
		return s.word(p, "false")
	case c == 'n':
		return s.word(p, "null")
	}
	return syntax(p)
}

// container scans an object or array at s.i up to its end byte, calling
// item for each member or item (kind names them); item returns the path of
// what it scanned.
func (s *scanner) container(p path, depth int, end byte, kind string, item func(n int) (path, error)) error {
	if depth > s.lim.MaxDepth {
		return problem(p, fmt.Sprintf("nests deeper than %d levels", s.lim.MaxDepth))
	}
	s.i++
	s.space()
	if s.peek() == end {
		s.i++
		return nil
	}
	for n := 0; ; n++ {
		if n >= s.lim.MaxItems {
			return problem(p, fmt.Sprintf("must have at most %d %s", s.lim.MaxItems, kind))
		}
		ip, err := item(n)
		if err != nil {
			return err
		}
		s.space()
		switch s.peek() {
		case ',':
			s.i++
			s.space()
		case end:
			s.i++
			return nil
		default:
			return syntax(ip)
		}
	}
}

func (s *scanner) object(p path, depth int) error {
	seen := make(map[string]bool)
	return s.container(p, depth, '}', "members", func(int) (path, error) {
		if s.peek() != '"' {
			return p, syntax(p)
		}
		start := s.i
		if err := s.str(p, "a member name"); err != nil {
			return p, err
		}
		var name string
		if err := json.Unmarshal(s.data[start:s.i], &name); err != nil {
			return p, syntax(p) // cannot happen: str checked it
		}
		mp := p.member(name)
		if seen[name] {
			return mp, problem(mp, "is given more than once")
		}
		seen[name] = true
		s.space()
		if s.peek() != ':' {
			return mp, syntax(mp)
		}
		s.i++
		s.space()
		return mp, s.value(mp, depth+1)
	})
}

func (s *scanner) array(p path, depth int) error {
	return s.container(p, depth, ']', "items", func(n int) (path, error) {
		ip := p.index(n)
		return ip, s.value(ip, depth+1)
	})
}

// str scans a string at s.i, a value or (what is not empty) a member name
// of the object at p.
func (s *scanner) str(p path, what string) error {
	fail := func(reason string) error {
		if what != "" {
			return problem(p, "has "+what+" that "+reason)
		}
		return problem(p, reason)
	}
	s.i++
	for chars := 0; ; chars++ {
		if chars > s.lim.MaxString {
			return fail(fmt.Sprintf("must be at most %d characters", s.lim.MaxString))
		}
		if s.i >= len(s.data) {
			return syntax(p)
		}
		switch c := s.data[s.i]; {
		case c == '"':
			s.i++
			return nil
		case c == '\\':
			start := s.i
			ok, paired := s.escape()
			if !ok {
				return syntax(p)
			}
			if !paired {
				return fail("has an unpaired UTF-16 surrogate escape")
			}
			if string(s.data[start:s.i]) == `\u0000` {
				// PostgreSQL stores no NUL in text or jsonb: it
				// would fail later, as a 500.
				return fail("contains a NUL character")
			}
		case c < 0x20:
			return syntax(p) // control characters must be escaped
		case c < utf8.RuneSelf:
			s.i++
		default:
			r, size := utf8.DecodeRune(s.data[s.i:])
			if r == utf8.RuneError && size == 1 {
				return fail("is not valid UTF-8")
			}
			s.i += size
		}
	}
}

// escape scans one escape sequence (a surrogate pair is one): ok is false
// for a malformed one, paired false for a lone surrogate, which
// encoding/json would turn into U+FFFD.
func (s *scanner) escape() (ok, paired bool) {
	if s.i+1 >= len(s.data) {
		return false, true
	}
	if s.data[s.i+1] != 'u' {
		s.i += 2
		return strings.IndexByte(`"\/bfnrt`, s.data[s.i-1]) >= 0, true
	}
	r, ok := s.hex4(s.i + 2)
	if !ok {
		return false, true
	}
	s.i += 6
	if !utf16.IsSurrogate(r) {
		return true, true
	}
	if r >= 0xdc00 || s.peek() != '\\' || s.i+1 >= len(s.data) || s.data[s.i+1] != 'u' {
		return true, false
	}
	low, ok := s.hex4(s.i + 2)
	if !ok {
		return false, true
	}
	if low < 0xdc00 || low > 0xdfff {
		return true, false
	}
	s.i += 6
	return true, true
}

func (s *scanner) hex4(at int) (rune, bool) {
	if at+4 > len(s.data) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(s.data[at:at+4]), 16, 16)
	return rune(v), err == nil
}

func (s *scanner) number(p path) error {
	start := s.i
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return syntax(p)
	}
	if s.peek() == '.' {
		s.i++
		if !s.digits() {
			return syntax(p)
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !s.digits() {
			return syntax(p)
		}
	}
	if s.i-start > s.lim.MaxString {
		return problem(p, fmt.Sprintf("must be at most %d characters", s.lim.MaxString))
	}
	return nil
}

func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.data) && s.data[s.i] >= '0' && s.data[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

func (s *scanner) word(p path, w string) error {
	if !strings.HasPrefix(string(s.data[s.i:min(len(s.data), s.i+len(w))]), w) {
		return syntax(p)
	}
	s.i += len(w)
	return nil
}
