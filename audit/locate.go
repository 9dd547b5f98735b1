package audit

import (
	"bytes"
	"fmt"

	"github.com/chartstream/chartstream/eventstore"
)

// maxMarks bounds the checkpoints verification places a mismatch
// between: a tenant anchored every 5 s for a year has millions.
const maxMarks = 4096

// thin keeps at most about maxMarks checkpoints, halving the older ones
// when there are more; the newest is always kept.
func thin(cps []eventstore.Checkpoint) []eventstore.Checkpoint {
	if len(cps) <= maxMarks {
		return cps
	}
	kept := cps[:0]
	for i := (len(cps) - 1) % 2; i < len(cps); i += 2 { // the last kept
		kept = append(kept, cps[i])
	}
	return kept
}

// markCursors are where the walk takes the chain: the start of the
// history, then each checkpoint's last event.
func markCursors(cps []eventstore.Checkpoint) []eventstore.Cursor {
	out := make([]eventstore.Cursor, 0, len(cps)+1)
	out = append(out, eventstore.Cursor{})
	for _, c := range cps {
		out = append(out, c.Last)
	}
	return out
}

// placed says where the history first differs from its checkpoints:
// after the newest one that still matches, at the first event found
// after it.
type placed struct {
	// good is the newest checkpoint that still matches; nil for none.
	good *eventstore.Checkpoint
	// next is the checkpoint after it, the first that differs.
	next *eventstore.Checkpoint
	// first is the first event after good; nil when none is left.
	first *eventstore.EventRef
}

// locate places the first difference, marks being the walk's chains at
// markCursors(cps).
func locate(cps []eventstore.Checkpoint, marks []eventstore.Mark) placed {
	var p placed
	if len(marks) != len(cps)+1 {
		return p
	}
	p.first = marks[0].Next
	for i := range cps {
		m := marks[i+1].Chain
		if m.Events != cps[i].Events || !bytes.Equal(m.Hash, cps[i].Hash) {
			p.next = &cps[i]
			return p
		}
		p.good, p.first = &cps[i], marks[i+1].Next
	}
	return placed{}
}

// String says where, for a finding's detail.
func (p placed) String() string {
	if p.next == nil {
		return ""
	}
	window := "from the tenant's first event (no checkpoint before it still matches)"
	if p.good != nil {
		window = fmt.Sprintf("after checkpoint %d (whose %d events still match)", p.good.Seq, p.good.Events)
	}
	window += fmt.Sprintf(" and by checkpoint %d", p.next.Seq)
	if p.first == nil {
		return "; the difference lies " + window + ", and no event is left there"
	}
	return fmt.Sprintf("; the difference lies %s: the first event found there is %s %s version %d (event %s)",
		window, p.first.Stream.Type, p.first.Stream.ID, p.first.Version, p.first.EventID)
}

// compare judges the chain recomputed from the data up to the checkpoint's
// last event against what the checkpoint signed; where places the
// difference.
func compare(ref eventstore.Checkpoint, got eventstore.Chain, r *Report, where placed) {
	at := fmt.Sprintf("checkpoint %d (signed %s)", ref.Seq, ref.SignedAt.Format("2006-01-02T15:04:05Z07:00"))
	switch {
	case got.Events < ref.Events:
		r.add(Finding{Kind: KindMissingEvents, Seq: ref.Seq, At: where.first, Detail: fmt.Sprintf(
			"%d of the %d events anchored by %s are missing: deleted from a stream's middle or tail, or a whole stream%s "+
				"(chartstream relay verify names them by id while CLINICAL retains them)",
			ref.Events-got.Events, ref.Events, at, where)})
	case got.Events > ref.Events:
		r.add(Finding{Kind: KindExtraEvents, Seq: ref.Seq, At: where.first, Detail: fmt.Sprintf(
			"%d events more than the %d anchored by %s: inserted into the anchored history%s", got.Events-ref.Events, ref.Events, at, where)})
	case !bytes.Equal(got.Hash, ref.Hash):
		r.add(Finding{Kind: KindAlteredEvents, Seq: ref.Seq, At: where.first, Detail: fmt.Sprintf(
			"the %d events anchored by %s are not those signed: an event was rewritten (and its stream re-chained) or reordered%s", ref.Events, at, where)})
	}
}
