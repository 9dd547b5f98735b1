package eventstoretest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/testkit"
)

func testBadInput(t *testing.T, newStore NewStoreFn) {
	ctx := testkit.Context(t)
	s := newStore(t, eventstore.Config{MaxPayloadBytes: 64, MaxEventsPerAppend: 3}, Specs())
	defaults := newStore(t, eventstore.Config{}, Specs())
	tenant := testkit.MustTenant(t)
	raw := func(payload string) chartstream.NewEvent {
		return chartstream.NewEvent{Type: "test.happened", Payload: json.RawMessage(payload)}
	}
	happened := NewEvent("test.happened", map[string]any{})
	noted := NewEvent("test.noted", map[string]any{"name": "Ada Lovelace"})
	big := func(n int) chartstream.NewEvent { return raw(`{"x":"` + strings.Repeat("a", n-8) + `"}`) }
	cases := []struct {
		name   string
		store  *eventstore.Store
		tenant chartstream.TenantID
		stream chartstream.StreamRef
		events []chartstream.NewEvent
		code   string
	}{
		{"unknown event type", s, tenant, Stream(), []chartstream.NewEvent{NewEvent("test.unknown", map[string]any{})}, chartstream.EINVALID},
		{"over the configured limit", s, tenant, Stream(), []chartstream.NewEvent{big(65)}, chartstream.ETOOLARGE},
		{"over the default limit", defaults, tenant, Stream(), []chartstream.NewEvent{big(256<<10 + 1)}, chartstream.ETOOLARGE},
		{"invalid UTF-8", s, tenant, Stream(), []chartstream.NewEvent{raw("{\"x\":\"\xff\xfe\"}")}, chartstream.EINVALID},
		{"JSON array", s, tenant, Stream(), []chartstream.NewEvent{raw(`[1,2]`)}, chartstream.EINVALID},
		{"JSON string", s, tenant, Stream(), []chartstream.NewEvent{raw(`"{}"`)}, chartstream.EINVALID},
		{"JSON null", s, tenant, Stream(), []chartstream.NewEvent{raw(`null`)}, chartstream.EINVALID},
		{"truncated JSON", s, tenant, Stream(), []chartstream.NewEvent{raw(`{"x":`)}, chartstream.EINVALID},
		{"empty payload", s, tenant, Stream(), []chartstream.NewEvent{raw(``)}, chartstream.EINVALID},
		{"another tenant's id", s, tenant, Stream(), []chartstream.NewEvent{NewEvent("test.happened", map[string]any{"tenant_id": chartstream.NewTenantID()})}, chartstream.EINVALID},
		{"zero tenant", s, chartstream.TenantID{}, Stream(), []chartstream.NewEvent{happened}, chartstream.EINVALID},
		{"unknown tenant", s, chartstream.NewTenantID(), Stream(), []chartstream.NewEvent{happened}, chartstream.ENOTFOUND},
		{"unknown tenant, PHI", s, chartstream.NewTenantID(), Stream(), []chartstream.NewEvent{noted}, chartstream.ENOTFOUND},
		{"empty batch", s, tenant, Stream(), nil, chartstream.EINVALID},
		{"batch over the configured limit", s, tenant, Stream(), []chartstream.NewEvent{happened, happened, happened, happened}, chartstream.EINVALID},
		{"bad stream type", s, tenant, chartstream.StreamRef{Type: "Patient!", ID: uuid.New()}, []chartstream.NewEvent{happened}, chartstream.EINVALID},
		{"nil stream id", s, tenant, chartstream.StreamRef{Type: "patient"}, []chartstream.NewEvent{happened}, chartstream.EINVALID},
		{"PHI without its subject", s, tenant, Stream(), []chartstream.NewEvent{NewEvent("test.referred", map[string]any{"note": "x"})}, chartstream.EINVALID},
	}
	for _, tc := range cases {
		_, err := tc.store.Append(ctx, tc.tenant, tc.stream, chartstream.NoStream, tc.events...)
		if code := chartstream.ErrorCode(err); code != tc.code {
			t.Errorf("%s: error %v has code %q, want %q", tc.name, err, code, tc.code)
		}
		if msg := chartstream.ErrorMessage(err); strings.Contains(msg, "Ada") || strings.Contains(msg, "aaaa") {
			t.Errorf("%s: the error message echoes the payload: %q", tc.name, msg)
		}
	}
	// Nothing of any refused append reached the tenant.
	wantVerified(t, ctx, s, tenant, 0)

	// The limits are inclusive, and a payload may name its own tenant.
	accepted := [][]chartstream.NewEvent{
		{big(64)},
		{happened, happened, happened},
		{NewEvent("test.happened", map[string]any{"tenant_id": tenant})},
	}
	for _, events := range accepted {
		if _, err := s.Append(ctx, tenant, Stream(), chartstream.NoStream, events...); err != nil {
			t.Errorf("append of %d events: %v", len(events), err)
		}
	}
	wantVerified(t, ctx, s, tenant, 5)
}

func testUniqueClaims(t *testing.T, newStore NewStoreFn) {
	ctx := testkit.Context(t)
	s := newStore(t, eventstore.Config{}, Specs())
	a, b := testkit.MustTenant(t), testkit.MustTenant(t)
	claiming := func(values ...string) chartstream.NewEvent {
		e := NewEvent("test.happened", map[string]any{})
		for _, v := range values {
			e.Claims = append(e.Claims, chartstream.UniqueClaim{Scope: "patient.mrn", Value: v})
		}
		return e
	}
	if _, err := s.Append(ctx, a, Stream(), chartstream.NoStream, claiming("MRN-1")); err != nil {
		t.Fatal(err)
	}
	// A second stream claiming the same value (alongside a fresh one) is
	// refused and writes neither its event nor its claims.
	second := Stream()
	_, err := s.Append(ctx, a, second, chartstream.NoStream, claiming("MRN-2", "MRN-1"))
	WantCode(t, err, chartstream.ECONFLICT)
	wantStream(t, ctx, s, a, second)
	// Two events of one append claiming the same value conflict too.
	_, err = s.Append(ctx, a, second, chartstream.NoStream, claiming("MRN-3"), claiming("MRN-3"))
	WantCode(t, err, chartstream.ECONFLICT)
	wantStream(t, ctx, s, a, second)
	// An append refused for its expected version reserves nothing either.
	_, err = s.Append(ctx, a, second, 5, claiming("MRN-4"))
	WantCode(t, err, chartstream.ECONFLICT)
	wantStream(t, ctx, s, a, second)

	// MRN-2 to MRN-4 were not reserved by the refused appends; the same
	// value in another scope or another tenant is another claim.
	ok := []struct {
		tenant chartstream.TenantID
		event  chartstream.NewEvent
	}{
		{a, claiming("MRN-2", "MRN-3", "MRN-4")},
		{a, chartstream.NewEvent{Type: "test.happened", Payload: json.RawMessage(`{}`), Claims: []chartstream.UniqueClaim{{Scope: "patient.ssn", Value: "MRN-1"}}}},
		{b, claiming("MRN-1")},
	}
	for _, c := range ok {
		if _, err := s.Append(ctx, c.tenant, Stream(), chartstream.NoStream, c.event); err != nil {
			t.Errorf("claim %+v in tenant %s: %v", c.event.Claims, c.tenant, err)
		}
	}
	wantVerified(t, ctx, s, a, 3)
	wantVerified(t, ctx, s, b, 1)
}

func testCrossTenant(t *testing.T, newStore NewStoreFn) {
	ctx := testkit.Context(t)
	s := newStore(t, eventstore.Config{}, Specs())
	a, b := testkit.MustTenant(t), testkit.MustTenant(t)
	st := Stream() // the same stream id in both tenants
	var ids [2][]uuid.UUID
	appendTo := func(i int, tenant chartstream.TenantID, expected int64, n int) {
		t.Helper()
		var events []chartstream.NewEvent
		for range n {
			e, id := withID(NewEvent("test.happened", map[string]any{"tenant": i}))
			events, ids[i] = append(events, e), append(ids[i], id)
		}
		res, err := s.Append(ctx, tenant, st, expected, events...)
		if err != nil {
			t.Fatalf("append to tenant %d at %d: %v", i, expected, err)
		}
		if res.Version != expected+int64(n) {
			t.Fatalf("tenant %d: version %d after appending %d at %d", i, res.Version, n, expected)
		}
	}
	// Interleaved, each tenant's stream starts at 1 and never conflicts
	// with the other's.
	appendTo(0, a, chartstream.NoStream, 2)
	appendTo(1, b, chartstream.NoStream, 1)
	appendTo(0, a, 2, 1)
	appendTo(1, b, 1, 2)
	wantStream(t, ctx, s, a, st, ids[0]...)
	wantStream(t, ctx, s, b, st, ids[1]...)
	wantVerified(t, ctx, s, a, 3)
	wantVerified(t, ctx, s, b, 3)

	for i, tenant := range []chartstream.TenantID{a, b} {
		for _, e := range ReadAllTenant(t, ctx, s, tenant, 3, 2) {
			if e.Tenant != tenant || Payload(t, e)["tenant"] != float64(i) {
				t.Errorf("ReadAll for tenant %d returned %+v", i, e)
			}
		}
	}
	// Without a tenant a tenant-bound role sees nothing at all.
	if events, _, err := s.ReadAll(ctx, eventstore.Filter{}, eventstore.Cursor{}, 10); err != nil || len(events) != 0 {
		t.Errorf("ReadAll without a tenant: %d events, %v", len(events), err)
	}
}

func testReadAllPages(t *testing.T, newStore NewStoreFn) {
	ctx, s, tenant, st := begin(t, newStore)
	var want []uuid.UUID
	for i := range 5 {
		e, id := withID(NewEvent("test.noted", map[string]any{"n": i, "note": "private"}))
		if _, err := s.Append(ctx, tenant, st, int64(i), e); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	events := ReadAllTenant(t, ctx, s, tenant, 5, 2)
	for i, e := range events {
		if e.ID != want[i] || e.Version != int64(i+1) || e.Sealed == nil || e.TxID == 0 {
			t.Errorf("ReadAll event %d = %+v, want %s at version %d, sealed", i, e, want[i], i+1)
		}
		if i > 0 && !eventstore.CursorOf(e).After(eventstore.CursorOf(events[i-1])) {
			t.Errorf("ReadAll event %d at %+v, not after %+v", i, eventstore.CursorOf(e), eventstore.CursorOf(events[i-1]))
		}
	}
	// Past the end, ReadAll returns nothing and keeps the cursor, which is
	// the head.
	filter := eventstore.Filter{Tenant: tenant}
	_, end, err := s.ReadAll(ctx, filter, eventstore.Cursor{}, 5)
	if err != nil {
		t.Fatal(err)
	}
	rest, next, err := s.ReadAll(ctx, filter, end, 5)
	if err != nil || len(rest) != 0 || next != end || end != eventstore.CursorOf(events[4]) {
		t.Errorf("ReadAll past the end: %d events, cursor %+v (was %+v), %v", len(rest), next, end, err)
	}
	if head, err := s.Head(ctx, filter); err != nil || head != end {
		t.Errorf("Head = %+v, %v; want %+v", head, err, end)
	}
	if head, err := s.Head(ctx, eventstore.Filter{Tenant: testkit.MustTenant(t)}); err != nil || head != (eventstore.Cursor{}) {
		t.Errorf("Head of an empty tenant = %+v, %v", head, err)
	}
}
