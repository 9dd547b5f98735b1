package eventstore

import (
	"crypto/sha256"
	"hash"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
)

// EventRef names an event without its content: where a finding points.
type EventRef struct {
	Stream  chartstream.StreamRef `json:"stream"`
	Version int64                 `json:"version"`
	EventID uuid.UUID             `json:"event_id"`
	// Cursor never leaves the platform (see CursorCodec).
	Cursor     Cursor    `json:"-"`
	RecordedAt time.Time `json:"recorded_at"`
}

// Ref names e.
func (e *StoredEvent) Ref() EventRef {
	return EventRef{Stream: chartstream.StreamRef{Type: e.StreamType, ID: e.StreamID}, Version: e.Version, EventID: e.EventID,
		Cursor: e.Cursor(), RecordedAt: e.RecordedAt()}
}

// Mark is the recomputed history at one of VerifyParams.Marks.
type Mark struct {
	// Chain is the running hash over the events at or before the mark.
	Chain Chain
	// Next is the first event after the mark; nil for none.
	Next *EventRef
}

// Walk verifies a tenant's events handed to it in commit order: the
// store's Verify and the offline check of an export share it.
type Walk struct {
	p      VerifyParams
	passed bool
	check  *chainCheck
	h      hash.Hash
	report VerifyReport
}

// NewWalk starts a walk of tenant's events.
func NewWalk(tenant chartstream.TenantID, p VerifyParams) *Walk {
	w := &Walk{p: p, check: newChainCheck(), h: sha256.New(), report: VerifyReport{Anchored: NewChain(tenant)}}
	w.report.Marks = make([]Mark, 0, len(p.Marks))
	return w
}

// Add checks the next event and returns its stream's first break when e
// is it. e's bytes need not outlive the call.
func (w *Walk) Add(e *StoredEvent) *BrokenEvent {
	computed, broken := w.check.Check(e, w.h)
	if broken != nil && len(w.report.Broken) < maxBroken {
		w.report.Broken = append(w.report.Broken, *broken)
	}
	c := e.Cursor()
	for len(w.report.Marks) < len(w.p.Marks) && c.After(w.p.Marks[len(w.report.Marks)]) {
		ref := e.Ref()
		w.takeMark(&ref)
	}
	covered := w.p.Anchor != nil && !w.passed && !c.After(*w.p.Anchor)
	if covered || (w.p.Anchor == nil && !w.passed) {
		w.report.Anchored.Add(c, computed)
	} else {
		w.report.Unanchored++
	}
	if o := w.report.OldestUncovered; !covered && (o == nil || e.RecordedAt().Before(o.RecordedAt)) {
		ref := e.Ref()
		w.report.OldestUncovered = &ref
	}
	w.report.Events++
	return broken
}

// PassAnchor says the events added from now on come after the anchor,
// for a caller that finds where the anchor is only as it walks: an
// export's checker, whose events carry the anchor's sealed cursor but no
// cursor of their own (each at the zero Cursor, covered by a zero
// VerifyParams.Anchor until passed).
func (w *Walk) PassAnchor() { w.passed = true }

// takeMark records the chain at the next mark, next being the first event
// after it.
func (w *Walk) takeMark(next *EventRef) {
	ch := w.report.Anchored
	ch.Hash = append(Hash(nil), ch.Hash...)
	w.report.Marks = append(w.report.Marks, Mark{Chain: ch, Next: next})
}

// Report is what the walk recomputed from the events added.
func (w *Walk) Report() VerifyReport {
	for len(w.report.Marks) < len(w.p.Marks) {
		w.takeMark(nil)
	}
	w.report.Streams = w.check.Streams()
	return w.report
}
