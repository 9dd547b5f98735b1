package eventstoretest

import (
	"sync"
	"testing"

	"github.com/chartstream/chartstream"
)

// A write to several streams records all of its events or none.
func testWriteAcrossStreams(t *testing.T, newStore NewStoreFn) {
	ctx, s, tenant, order := begin(t, newStore)
	patient := Stream()
	if _, err := s.Append(ctx, tenant, patient, chartstream.NoStream, NewEvent("test.happened", map[string]any{"n": 1})); err != nil {
		t.Fatal(err)
	}
	// The patient moved on: the write, which expected version 0 of it,
	// writes neither stream.
	_, err := s.Write(ctx, tenant,
		chartstream.Append{Stream: order, Expected: chartstream.NoStream, Events: []chartstream.NewEvent{NewEvent("test.happened", map[string]any{"n": 1})}},
		chartstream.Append{Stream: patient, Expected: 0, Events: []chartstream.NewEvent{NewEvent("test.happened", map[string]any{"n": 2})}})
	WantCode(t, err, chartstream.ECONFLICT)
	if events, err := s.ReadStream(ctx, tenant, order, 1); err != nil || len(events) != 0 {
		t.Fatalf("a refused write left %d events in the other stream (%v)", len(events), err)
	}
	res, err := s.Write(ctx, tenant,
		chartstream.Append{Stream: order, Expected: chartstream.NoStream, Events: []chartstream.NewEvent{NewEvent("test.happened", map[string]any{"n": 1})}},
		chartstream.Append{Stream: patient, Expected: 1, Events: []chartstream.NewEvent{NewEvent("test.happened", map[string]any{"n": 2})}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Version != 1 || res[1].Version != 2 {
		t.Fatalf("results %+v, want the order at 1 and the patient at 2", res)
	}
	wantVerified(t, ctx, s, tenant, 3)
}

// An append without events checks its stream: at an exact version, or
// that no event of the given types came after the version a decision was
// taken at. Events of other types do not make it conflict.
func testWriteConditions(t *testing.T, newStore NewStoreFn) {
	ctx, s, tenant, order := begin(t, newStore)
	patient := Stream()
	happened := NewEvent("test.happened", map[string]any{})
	if _, err := s.Append(ctx, tenant, patient, chartstream.NoStream, happened); err != nil {
		t.Fatal(err)
	}
	decidedAt := int64(1)
	// Another writer records something the decision does not depend on.
	if _, err := s.Append(ctx, tenant, patient, chartstream.AnyVersion, NewEvent("test.happened", map[string]any{})); err != nil {
		t.Fatal(err)
	}
	guard := chartstream.Append{Stream: patient, Expected: chartstream.AnyVersion, Since: decidedAt, Unless: []string{"test.noted"}}
	first := chartstream.Append{Stream: order, Expected: chartstream.NoStream, Events: []chartstream.NewEvent{NewEvent("test.happened", map[string]any{})}}
	if _, err := s.Write(ctx, tenant, first, guard); err != nil {
		t.Fatalf("a write whose guarded stream gained only other events: %v", err)
	}
	// Now something it depends on.
	if _, err := s.Append(ctx, tenant, patient, chartstream.AnyVersion, NewEvent("test.noted", map[string]any{"name": "x"})); err != nil {
		t.Fatal(err)
	}
	second := chartstream.Append{Stream: order, Expected: 1, Events: []chartstream.NewEvent{NewEvent("test.happened", map[string]any{})}}
	_, err := s.Write(ctx, tenant, second, guard)
	WantCode(t, err, chartstream.ECONFLICT)
	// The same condition on a stream the write appends to.
	_, err = s.Write(ctx, tenant, chartstream.Append{Stream: patient, Expected: chartstream.AnyVersion, Since: decidedAt, Unless: []string{"test.noted"},
		Events: []chartstream.NewEvent{NewEvent("test.happened", map[string]any{})}})
	WantCode(t, err, chartstream.ECONFLICT)
	// At an exact version.
	_, err = s.Write(ctx, tenant, second, chartstream.Append{Stream: patient, Expected: 2})
	WantCode(t, err, chartstream.ECONFLICT)
	if _, err := s.Write(ctx, tenant, second, chartstream.Append{Stream: patient, Expected: 3}); err != nil {
		t.Fatalf("a write whose guarded stream is at the expected version: %v", err)
	}
	// A write must record something.
	_, err = s.Write(ctx, tenant, chartstream.Append{Stream: patient, Expected: 3})
	WantCode(t, err, chartstream.EINVALID)
}

// Appends at any version to one stream, all at once, all succeed, take the
// versions 1..n without a gap, and the gap-free read returns the stream's
// events in version order: no conflict for writers whose decisions do not
// depend on one another.
func testAnyVersionConcurrency(t *testing.T, newStore NewStoreFn) {
	ctx, s, tenant, st := begin(t, newStore)
	const writers = 64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Write(ctx, tenant, chartstream.Append{Stream: st, Expected: chartstream.AnyVersion, Unless: []string{"test.noted"},
				Events: []chartstream.NewEvent{NewEvent("test.happened", map[string]any{})}})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a concurrent append at any version failed: %v", err)
		}
	}
	events := ReadAllTenant(t, ctx, s, tenant, writers, 1000)
	for i, e := range events {
		if e.Version != int64(i+1) {
			t.Fatalf("the gap-free read returned version %d at %d: %v", e.Version, i, versions(events))
		}
	}
	wantVerified(t, ctx, s, tenant, writers)
}

func versions(events []chartstream.Event) []int64 {
	out := make([]int64, len(events))
	for i, e := range events {
		out[i] = e.Version
	}
	return out
}
