package projections

import (
	"errors"
	"strings"
	"testing"

	"github.com/chartstream/chartstream"
)

// FuzzDecodeCursor reads page cursors: never a panic; a refusal is an
// EINVALID *chartstream.Error naming the cursor field with its fixed
// reason, never the cursor; a cursor read as a row id is read as the same
// id again from the cursor encodeCursor writes for it.
func FuzzDecodeCursor(f *testing.F) {
	f.Fuzz(func(t *testing.T, cursor string) {
		id, ok, err := decodeCursor(cursor)
		if err != nil {
			var e *chartstream.Error
			if !errors.As(err, &e) || e.Code != chartstream.EINVALID || len(e.Fields) != 1 || e.Fields[0].Field != "cursor" ||
				(len(cursor) > 3 && strings.Contains(e.Error(), cursor)) {
				t.Fatalf("refusal %v, want EINVALID naming the cursor without repeating it", err)
			}
			return
		}
		if ok != (cursor != "") {
			t.Fatalf("cursor %q: paging %v", cursor, ok)
		}
		if !ok {
			return
		}
		again, ok, err := decodeCursor(encodeCursor(id))
		if err != nil || !ok || again != id {
			t.Fatalf("cursor %q reads as %s, its re-encoding as %s (%v)", cursor, id, again, err)
		}
	})
}
