package eventstore

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
)

// A sealed cursor opens to itself under the tenant's key only, is the
// same token every time (an export's lines are checked against a
// checkpoint by comparing tokens), says nothing of its numbers, and any
// change to it is refused.
func TestCursorCodec(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, 32)
	tenant, other := chartstream.TenantID(uuid.New()), chartstream.TenantID(uuid.New())
	k, err := NewCursorCodec(tenant, key)
	if err != nil {
		t.Fatal(err)
	}
	c := Cursor{TxID: 123456789, Position: 987654}
	token := k.Seal(c)
	if got, err := k.Open(token); err != nil || got != c {
		t.Fatalf("Open(Seal(%v)) = %v, %v", c, got, err)
	}
	if again := k.Seal(c); again != token {
		t.Errorf("sealed twice: %q then %q, want one token", token, again)
	}
	if next := k.Seal(Cursor{TxID: c.TxID, Position: c.Position + 1}); next == token {
		t.Error("two cursors, one token")
	}
	if len(token) != 62 || strings.Contains(token, strconv.FormatInt(c.TxID, 10)) || strings.Contains(token, strconv.FormatInt(c.Position, 10)) {
		t.Errorf("token %q: want 62 characters that do not spell the cursor", token)
	}
	foreignTenant, _ := NewCursorCodec(other, key)
	foreignKey, _ := NewCursorCodec(tenant, bytes.Repeat([]byte{8}, 32))
	for name, open := range map[string]func(string) (Cursor, error){"another tenant": foreignTenant.Open, "another key": foreignKey.Open} {
		if _, err := open(token); chartstream.ErrorCode(err) != chartstream.EINVALID {
			t.Errorf("%s opens the token: %v", name, err)
		}
	}
	// One codec serves many requests at once.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				c := Cursor{TxID: int64(g), Position: int64(i)}
				if got, err := k.Open(k.Seal(c)); err != nil || got != c {
					t.Errorf("concurrently: Open(Seal(%v)) = %v, %v", c, got, err)
				}
			}
		})
	}
	wg.Wait()
	flipped := []byte(token)
	flipped[len(flipped)-5] ^= 1
	for _, bad := range []string{"", "c1.", "123.456", "c2." + token[3:], token + "A", token[:len(token)-1], string(flipped), strings.ToLower(token)} {
		if got, err := k.Open(bad); chartstream.ErrorCode(err) != chartstream.EINVALID {
			t.Errorf("Open(%q) = %v, %v; want EINVALID", bad, got, err)
		}
	}
}

// An export seals every line's cursor: what that adds per event.
func BenchmarkCursorSeal(b *testing.B) {
	k, err := NewCursorCodec(chartstream.TenantID(uuid.New()), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = k.Seal(Cursor{TxID: 1 << 40, Position: int64(i)})
	}
}
