package eventstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/chartstream/chartstream"
)

// renameFn upcasts by renaming one top-level member of a JSON object.
func renameFn(from, to string) UpcastFn {
	return func(p json.RawMessage) (json.RawMessage, error) {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(p, &m); err != nil || m == nil {
			return nil, fmt.Errorf("payload is not an object: %w", err)
		}
		if v, ok := m[from]; ok {
			m[to] = v
			delete(m, from)
		}
		return json.Marshal(m)
	}
}

// FuzzUpcast brings stored payloads of any type and schema version to the
// current version: never a panic; a version below 1 is EINVALID; an
// unregistered type, or a version at or past the current, comes back as
// stored; an older one comes back at the current version with every
// upcaster applied, or with an error naming the type and version that
// wraps the upcaster's.
func FuzzUpcast(f *testing.F) {
	r, err := NewRegistry([]chartstream.EventSpec{{Type: "test.versioned", SchemaVersion: 3}, {Type: "test.plain", SchemaVersion: 1}},
		Upcaster{Type: "test.versioned", From: 1, Fn: renameFn("old", "mid")},
		Upcaster{Type: "test.versioned", From: 2, Fn: renameFn("mid", "new")})
	if err != nil {
		f.Fatal(err)
	}
	types := []string{"test.versioned", "test.plain", "test.unknown"}
	f.Fuzz(func(t *testing.T, typ uint8, version int, payload []byte) {
		eventType := types[int(typ)%len(types)]
		current := map[string]int{"test.versioned": 3, "test.plain": 1}[eventType]
		out, v, err := r.upcast(eventType, version, payload)
		switch {
		case current == 0 || version >= current:
			if err != nil || v != version || string(out) != string(payload) {
				t.Fatalf("%s v%d: %d %q %v, want it as stored", eventType, version, v, out, err)
			}
		case version < 1:
			var e *chartstream.Error
			if !errors.As(err, &e) || e.Code != chartstream.EINVALID {
				t.Fatalf("%s v%d: %v, want EINVALID", eventType, version, err)
			}
		case err != nil:
			if !strings.Contains(err.Error(), eventType) || errors.Unwrap(err) == nil {
				t.Fatalf("%s v%d: error %v does not name the type or wrap the cause", eventType, version, err)
			}
		default:
			var m map[string]json.RawMessage
			if v != current || json.Unmarshal(out, &m) != nil || m["mid"] != nil || version == 1 && m["old"] != nil {
				t.Fatalf("%s v%d upcast to v%d: %s", eventType, version, v, out)
			}
		}
	})
}
