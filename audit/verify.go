package audit

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
)

// History is what verification reads from the event store.
type History interface {
	Verify(ctx context.Context, tenant chartstream.TenantID, p eventstore.VerifyParams) (eventstore.VerifyReport, error)
	Checkpoints(ctx context.Context, tenant chartstream.TenantID, fn eventstore.CheckpointFn) error
	LatestCheckpoint(ctx context.Context, tenant chartstream.TenantID) (*eventstore.Checkpoint, error)
}

// Anchors reads the newest checkpoint of a tenant published on
// CLINICAL_ANCHORS (workers.AnchorStream): nil when there is none.
type Anchors interface {
	Latest(ctx context.Context, tenant chartstream.TenantID) (*eventstore.Checkpoint, error)
}

// Kinds of finding. Each names a way the history differs from what was
// signed.
const (
	// KindBrokenChain: a stream's own chain does not hold (version gap,
	// broken link, hash mismatch).
	KindBrokenChain = "broken_chain"
	// KindMissingEvents: fewer events than the checkpoint anchored: one
	// deleted from the middle of a stream, a stream's tail, a whole stream.
	KindMissingEvents = "missing_events"
	// KindExtraEvents: more events than the checkpoint anchored, inserted
	// into the anchored past.
	KindExtraEvents = "extra_events"
	// KindAlteredEvents: as many events as anchored, but not the same:
	// one rewritten (its stream re-chained to hide it) or reordered.
	KindAlteredEvents = "altered_events"
	// KindBadCheckpoint: a checkpoint row whose signature does not
	// verify: replaced or forged.
	KindBadCheckpoint = "checkpoint_signature"
	// KindCheckpointGap: checkpoint rows missing from the sequence.
	KindCheckpointGap = "checkpoint_gap"
	// KindCheckpointMissing: CLINICAL_ANCHORS holds a newer checkpoint
	// than the table: the newest rows were deleted.
	KindCheckpointMissing = "checkpoint_missing"
	// KindCheckpointDiffers: the table and CLINICAL_ANCHORS disagree on a
	// checkpoint.
	KindCheckpointDiffers = "checkpoint_differs"
	// KindAnchorOverdue: events recorded longer ago than the anchor's
	// grace that no validly signed checkpoint covers: the checkpoints were
	// deleted, or the anchor worker is down.
	KindAnchorOverdue = "anchor_overdue"
)

// DefaultAnchorGrace is how old an event may be before verification
// expects a signed checkpoint to cover it: a dozen of the anchor worker's
// default 5 s intervals.
const DefaultAnchorGrace = time.Minute

// Finding is one thing verification found wrong, named without PHI.
type Finding struct {
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
	// Event is set for a broken stream chain.
	Event *eventstore.BrokenEvent `json:"event,omitempty"`
	// At is the event a finding points to, where the data allows: the
	// first found after the last checkpoint that still matches (missing
	// or altered events), the oldest not anchored (anchor overdue).
	At *eventstore.EventRef `json:"at,omitempty"`
	// Seq is the checkpoint concerned, when one is.
	Seq int64 `json:"seq,omitempty"`
}

// Report is the outcome of Verify. OK is true when there are no findings.
type Report struct {
	Tenant  chartstream.TenantID `json:"tenant_id"`
	OK      bool                 `json:"ok"`
	Streams int64                `json:"streams"`
	Events  int64                `json:"events"`
	// Checkpoint is the newest checkpoint whose signature verified, the
	// one the events were compared with; nil for none.
	Checkpoint *eventstore.Checkpoint `json:"checkpoint"`
	// CheckpointSource is "table" or "CLINICAL_ANCHORS".
	CheckpointSource string `json:"checkpoint_source,omitempty"`
	// Anchored events are covered by the checkpoint; Unanchored ones were
	// committed after it was signed (not tampering: nothing vouches for
	// them yet).
	Anchored   int64 `json:"anchored"`
	Unanchored int64 `json:"unanchored"`
	// AnchorsConsulted says whether CLINICAL_ANCHORS was read; without
	// it, deleting the newest checkpoint rows goes unnoticed.
	AnchorsConsulted bool `json:"anchors_consulted"`
	// Partial is set, for a file, when its only findings are events after
	// its checkpoint (KindUnanchored): what the checkpoint covers holds,
	// and nothing vouches for the rest.
	Partial  bool      `json:"partial"`
	Findings []Finding `json:"findings"`
}

// finish sets OK and Partial from the findings.
func (r *Report) finish() {
	r.OK, r.Partial = len(r.Findings) == 0, len(r.Findings) > 0
	for _, f := range r.Findings {
		r.Partial = r.Partial && f.Kind == KindUnanchored
	}
}

// Verifier checks tenants' histories.
type Verifier struct {
	History History
	// Anchors is CLINICAL_ANCHORS; nil when NATS is not configured.
	Anchors Anchors
	// Keys are the checkpoint signers' public keys.
	Keys SignatureVerifier
	// AnchorGrace is how old an event may be without a checkpoint covering
	// it (KindAnchorOverdue). Default DefaultAnchorGrace.
	AnchorGrace time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Verify checks every stream's chain, every checkpoint row's signature
// and sequence, the table against CLINICAL_ANCHORS, and the tenant's
// events against the newest valid checkpoint. Findings say what is wrong;
// an error means the check could not run.
func (v Verifier) Verify(ctx context.Context, tenant chartstream.TenantID, progress eventstore.ProgressFn) (Report, error) {
	if v.History == nil || v.Keys == nil {
		panic("audit: Verifier without History or Keys")
	}
	r := Report{Tenant: tenant, Findings: []Finding{}}
	var anchored *eventstore.Checkpoint
	if v.Anchors != nil {
		var err error
		if anchored, err = v.Anchors.Latest(ctx, tenant); err != nil {
			return r, fmt.Errorf("read CLINICAL_ANCHORS: %w", err)
		}
		r.AnchorsConsulted = true
		if anchored != nil && CheckSignature(*anchored, v.Keys) != nil {
			r.add(Finding{Kind: KindBadCheckpoint, Seq: anchored.Seq, Detail: fmt.Sprintf("the checkpoint %d on CLINICAL_ANCHORS is not validly signed", anchored.Seq)})
			anchored = nil
		}
	}
	valid, err := v.checkTable(ctx, tenant, anchored, &r)
	if err != nil {
		return r, err
	}
	var ref *eventstore.Checkpoint
	source := "table"
	if len(valid) > 0 {
		ref = &valid[len(valid)-1]
	}
	if anchored != nil && (ref == nil || anchored.Seq > ref.Seq) {
		valid = append(valid, *anchored)
		ref, source = anchored, "CLINICAL_ANCHORS"
	}
	params := eventstore.VerifyParams{Progress: progress, Marks: markCursors(valid)}
	if ref != nil {
		params.Anchor = &ref.Last
		r.Checkpoint, r.CheckpointSource = ref, source
	}
	data, err := v.History.Verify(ctx, tenant, params)
	if err != nil {
		return r, err
	}
	r.Streams, r.Events, r.Anchored, r.Unanchored = data.Streams, data.Events, data.Anchored.Events, data.Unanchored
	if ref == nil {
		r.Anchored, r.Unanchored = 0, data.Events // nothing vouches for any
	}
	for i := range data.Broken {
		b := data.Broken[i]
		r.add(Finding{Kind: KindBrokenChain, Event: &b,
			Detail: fmt.Sprintf("%s at %s %s version %d (event %s)", b.Reason, b.Stream.Type, b.Stream.ID, b.Version, b.EventID)})
	}
	if ref != nil {
		compare(*ref, data.Anchored, &r, locate(valid, data.Marks))
	}
	v.overdue(data.OldestUncovered, r.Events-r.Anchored, &r)
	r.finish()
	return r, nil
}

// overdue adds KindAnchorOverdue when the oldest of the n events no
// checkpoint covers was recorded longer ago than the grace.
func (v Verifier) overdue(oldest *eventstore.EventRef, n int64, r *Report) {
	grace, now := v.AnchorGrace, time.Now
	if grace <= 0 {
		grace = DefaultAnchorGrace
	}
	if v.Now != nil {
		now = v.Now
	}
	if oldest == nil || now().Sub(oldest.RecordedAt) <= grace {
		return
	}
	r.add(Finding{Kind: KindAnchorOverdue, At: oldest, Detail: fmt.Sprintf(
		"%d events are covered by no validly signed checkpoint, the oldest %s %s version %d (event %s) recorded %s, more than %s ago, "+
			"while the anchor signs every few seconds: checkpoints were deleted, or the anchor worker is down",
		n, oldest.Stream.Type, oldest.Stream.ID, oldest.Version, oldest.EventID, oldest.RecordedAt.Format(time.RFC3339), grace)})
}

// checkTable walks the tenant's checkpoint rows: each must verify and
// follow the one before. It returns the valid ones, oldest first (thinned
// to about maxMarks, the newest always kept), and compares the rows with
// CLINICAL_ANCHORS' newest (anchored, if any).
func (v Verifier) checkTable(ctx context.Context, tenant chartstream.TenantID, anchored *eventstore.Checkpoint, r *Report) ([]eventstore.Checkpoint, error) {
	var newest *eventstore.Checkpoint
	var valid []eventstore.Checkpoint
	var next int64 = 1
	seenAnchored := false
	err := v.History.Checkpoints(ctx, tenant, func(c eventstore.Checkpoint) error {
		if c.Seq != next {
			r.add(Finding{Kind: KindCheckpointGap, Seq: next, Detail: fmt.Sprintf("checkpoints %d to %d are missing from the table", next, c.Seq-1)})
		}
		next = c.Seq + 1
		if anchored != nil && c.Seq == anchored.Seq {
			seenAnchored = true
			if !bytes.Equal(c.SignedContent(), anchored.SignedContent()) || c.Signature != anchored.Signature || c.Last != anchored.Last {
				r.add(Finding{Kind: KindCheckpointDiffers, Seq: c.Seq, Detail: fmt.Sprintf("checkpoint %d in the table differs from CLINICAL_ANCHORS", c.Seq)})
			}
		}
		if CheckSignature(c, v.Keys) != nil {
			r.add(Finding{Kind: KindBadCheckpoint, Seq: c.Seq, Detail: fmt.Sprintf("checkpoint %d in the table is not validly signed: replaced or forged", c.Seq)})
			return nil
		}
		if newest != nil && c.Events < newest.Events { // signed counts only: Last is not signed
			r.add(Finding{Kind: KindBadCheckpoint, Seq: c.Seq, Detail: fmt.Sprintf("checkpoint %d goes back before checkpoint %d", c.Seq, newest.Seq)})
			return nil
		}
		newest = &c
		valid = thin(append(valid, c))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if anchored != nil && !seenAnchored {
		r.add(Finding{Kind: KindCheckpointMissing, Seq: anchored.Seq,
			Detail: fmt.Sprintf("checkpoint %d, published on CLINICAL_ANCHORS, is missing from the table (the table ends at %d)", anchored.Seq, next-1)})
	}
	return valid, nil
}

func (r *Report) add(f Finding) { r.Findings = append(r.Findings, f) }

// Newest returns the tenant's newest checkpoint whose signature verifies,
// of the table's newest row and CLINICAL_ANCHORS' newest message, for an
// export to carry; nil when neither verifies.
func (v Verifier) Newest(ctx context.Context, tenant chartstream.TenantID) (*eventstore.Checkpoint, error) {
	candidates := make([]*eventstore.Checkpoint, 0, 2)
	c, err := v.History.LatestCheckpoint(ctx, tenant)
	if err != nil {
		return nil, err
	}
	candidates = append(candidates, c)
	if v.Anchors != nil {
		if c, err = v.Anchors.Latest(ctx, tenant); err != nil {
			return nil, fmt.Errorf("read CLINICAL_ANCHORS: %w", err)
		}
		candidates = append(candidates, c)
	}
	var newest *eventstore.Checkpoint
	for _, c := range candidates {
		if c != nil && CheckSignature(*c, v.Keys) == nil && (newest == nil || c.Seq > newest.Seq) {
			newest = c
		}
	}
	return newest, nil
}
