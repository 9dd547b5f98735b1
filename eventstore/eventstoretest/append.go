package eventstoretest

import (
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
)

func testAppendReadStream(t *testing.T, newStore NewStoreFn) {
	ctx, s, tenant, st := begin(t, newStore)

	first, id1 := withID(NewEvent("test.happened", map[string]any{"n": 1}))
	first.Metadata = chartstream.Metadata{Actor: "user-7", Roles: []string{"nurse", "admin"}, CorrelationID: "corr", CausationID: "cause", RequestID: "req", Client: "web"}
	second, id2 := withID(NewEvent("test.happened", map[string]any{"n": 2}))
	res, err := s.Append(ctx, tenant, st, chartstream.NoStream, first, second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != 2 || len(res.Positions) != 2 || res.Positions[0] >= res.Positions[1] {
		t.Fatalf("append result %+v, want version 2 and two increasing positions", res)
	}
	third, id3 := withID(NewEvent("test.happened", map[string]any{"n": 3}))
	res2, err := s.Append(ctx, tenant, st, 2, third)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Version != 3 || len(res2.Positions) != 1 || res2.Positions[0] <= res.Positions[1] {
		t.Fatalf("second append result %+v after %+v", res2, res)
	}

	events := wantStream(t, ctx, s, tenant, st, id1, id2, id3)
	positions := append(res.Positions, res2.Positions...)
	for i, e := range events {
		if e.Position != positions[i] || e.Type != "test.happened" || e.SchemaVersion != 1 || e.RecordedAt.IsZero() || e.Sealed != nil {
			t.Errorf("event %d = %+v, want position %d", i, e, positions[i])
		}
		if n := Payload(t, e)["n"]; n != float64(i+1) {
			t.Errorf("event %d payload n = %v", i, n)
		}
	}
	if got := events[0].Metadata; got.Actor != "user-7" || strings.Join(got.Roles, ",") != "nurse,admin" ||
		got.CorrelationID != "corr" || got.CausationID != "cause" || got.RequestID != "req" || got.Client != "web" {
		t.Errorf("metadata = %+v, not as appended", got)
	}
	from2, err := s.ReadStream(ctx, tenant, st, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(from2) != 2 || from2[0].ID != id2 {
		t.Errorf("ReadStream from version 2 returned %d events", len(from2))
	}
	// A stream of another type with the same id is another stream.
	if other, err := s.ReadStream(ctx, tenant, chartstream.StreamRef{Type: "encounter", ID: st.ID}, 1); err != nil || len(other) != 0 {
		t.Errorf("ReadStream with another stream type: %d events, %v", len(other), err)
	}
	wantVerified(t, ctx, s, tenant, 3)
}

func testExpectedVersion(t *testing.T, newStore NewStoreFn) {
	ctx, s, tenant, st := begin(t, newStore)
	e1, id1 := withID(NewEvent("test.happened", map[string]any{}))
	e2, id2 := withID(NewEvent("test.happened", map[string]any{}))
	if _, err := s.Append(ctx, tenant, st, chartstream.NoStream, e1, e2); err != nil {
		t.Fatal(err)
	}
	refused := map[string]int64{"new stream on an existing one": chartstream.NoStream, "stale": 1, "ahead": 3}
	for name, expected := range refused {
		_, err := s.Append(ctx, tenant, st, expected, NewEvent("test.happened", map[string]any{"case": name}))
		WantCode(t, err, chartstream.ECONFLICT)
	}
	// The same id as a stream of another type is refused whatever the
	// expected version.
	other := chartstream.StreamRef{Type: "encounter", ID: st.ID}
	_, err := s.Append(ctx, tenant, other, chartstream.AnyVersion, NewEvent("test.happened", map[string]any{}))
	WantCode(t, err, chartstream.ECONFLICT)
	wantStream(t, ctx, s, tenant, st, id1, id2)

	e3, id3 := withID(NewEvent("test.happened", map[string]any{}))
	if res, err := s.Append(ctx, tenant, st, chartstream.AnyVersion, e3); err != nil || res.Version != 3 {
		t.Fatalf("AnyVersion on an existing stream: %+v, %v", res, err)
	}
	fresh := Stream()
	if res, err := s.Append(ctx, tenant, fresh, chartstream.AnyVersion, NewEvent("test.happened", map[string]any{})); err != nil || res.Version != 1 {
		t.Fatalf("AnyVersion on a new stream: %+v, %v", res, err)
	}
	wantStream(t, ctx, s, tenant, st, id1, id2, id3)
	wantVerified(t, ctx, s, tenant, 4)
}

func testAtomicBatch(t *testing.T, newStore NewStoreFn) {
	ctx, s, tenant, st := begin(t, newStore)
	ok := NewEvent("test.happened", map[string]any{})

	// Refused before the database: the second event's type is unknown.
	_, err := s.Append(ctx, tenant, st, chartstream.NoStream, ok, NewEvent("test.unknown", map[string]any{}))
	WantCode(t, err, chartstream.EINVALID)
	wantStream(t, ctx, s, tenant, st)

	// Refused by the database after the first row went in: the second
	// event repeats the first one's id.
	dup, _ := withID(NewEvent("test.happened", map[string]any{}))
	_, err = s.Append(ctx, tenant, st, chartstream.NoStream, NewEvent("test.happened", map[string]any{}), dup, dup)
	WantCode(t, err, chartstream.ECONFLICT)
	wantStream(t, ctx, s, tenant, st)

	// An event id recorded in another stream is refused too.
	if _, err := s.Append(ctx, tenant, Stream(), chartstream.NoStream, dup); err != nil {
		t.Fatal(err)
	}
	_, err = s.Append(ctx, tenant, st, chartstream.NoStream, NewEvent("test.happened", map[string]any{}), dup)
	WantCode(t, err, chartstream.ECONFLICT)
	wantStream(t, ctx, s, tenant, st)
	wantVerified(t, ctx, s, tenant, 1)
}

func testConcurrentAppend(t *testing.T, newStore NewStoreFn) {
	ctx, s, tenant, st := begin(t, newStore)
	e1, id1 := withID(NewEvent("test.happened", map[string]any{}))
	if _, err := s.Append(ctx, tenant, st, chartstream.NoStream, e1); err != nil {
		t.Fatal(err)
	}
	const writers = 8
	start := make(chan struct{})
	errs := make([]error, writers)
	ids := make([]uuid.UUID, writers)
	var wg sync.WaitGroup
	for i := range writers {
		var e chartstream.NewEvent
		e, ids[i] = withID(NewEvent("test.happened", map[string]any{"writer": i}))
		wg.Go(func() {
			<-start
			_, errs[i] = s.Append(ctx, tenant, st, 1, e)
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch chartstream.ErrorCode(err) {
		case "":
			if winner >= 0 {
				t.Fatalf("writers %d and %d both appended at version 1", winner, i)
			}
			winner = i
		case chartstream.ECONFLICT:
		default:
			t.Fatalf("writer %d: %v, want success or ECONFLICT", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	wantStream(t, ctx, s, tenant, st, id1, ids[winner])
	wantVerified(t, ctx, s, tenant, 2)
}
