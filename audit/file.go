package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
)

// Findings only a file can have.
const (
	// KindMalformed: a line that is not an export's.
	KindMalformed = "malformed"
	// KindTruncated: a file without its last line.
	KindTruncated = "truncated"
	// KindNoCheckpoint: the file carries no checkpoint at all, so nothing
	// vouches for any of its events: stripped, or exported before the
	// first one was signed.
	KindNoCheckpoint = "checkpoint_absent"
	// KindCheckpointStale: the file's checkpoint is older than the one the
	// auditor demands (FileParams.MinSeq).
	KindCheckpointStale = "checkpoint_stale"
	// KindUnanchored: events after the file's checkpoint. Nothing vouches
	// for them: committed after it was signed, or rewritten and re-chained
	// by whoever chose an older checkpoint to carry. The only finding of a
	// partly verified file (Report.Partial).
	KindUnanchored = "unanchored_events"
)

// FileParams says what VerifyFile trusts and demands.
type FileParams struct {
	// Keys are the checkpoint signers' public keys. Required.
	Keys SignatureVerifier
	// MinSeq, when positive, is the oldest checkpoint the file may carry:
	// an auditor who holds checkpoint N (from CLINICAL_ANCHORS, or an
	// earlier export) demands at least it.
	MinSeq int64
}

// ErrNotVerifiable is a file no checkpoint can vouch for as a whole: not
// an NDJSON export, or a filtered, limited or resumed one.
var ErrNotVerifiable = errors.New("not a full NDJSON export (verify needs one made without since, until, filters, limit or cursor)")

// maxLine bounds one line: an event's payload is at most 256 KiB, its PHI
// is in it twice (sealed, base64, and open).
const maxLine = 4 << 20

// fileEvent is an event line as Export writes it.
type fileEvent struct {
	Record        string          `json:"record"`
	Cursor        string          `json:"cursor"`
	StreamType    string          `json:"stream_type"`
	StreamID      uuid.UUID       `json:"stream_id"`
	Version       int64           `json:"version"`
	EventID       uuid.UUID       `json:"event_id"`
	EventType     string          `json:"event_type"`
	SchemaVersion int32           `json:"schema_version"`
	RecordedAt    time.Time       `json:"recorded_at"`
	Metadata      json.RawMessage `json:"metadata"`
	Payload       json.RawMessage `json:"payload"`
	Sealed        *struct {
		Subject    uuid.UUID `json:"subject"`
		Ciphertext []byte    `json:"ciphertext"`
	} `json:"sealed"`
	PrevHash eventstore.Hash `json:"prev_hash"`
	Hash     eventstore.Hash `json:"hash"`
	Events   int64           `json:"events"` // the end line's
}

// stored is the event as the store held it, as far as the hash goes.
func (f *fileEvent) stored(tenant chartstream.TenantID) eventstore.StoredEvent {
	e := eventstore.StoredEvent{Tenant: tenant, StreamType: f.StreamType, StreamID: f.StreamID,
		Version: f.Version, EventID: f.EventID, EventType: f.EventType, SchemaVersion: f.SchemaVersion, Payload: f.Payload,
		Metadata: f.Metadata, RecordedMicros: f.RecordedAt.UnixMicro(), PrevHash: f.PrevHash, Hash: f.Hash}
	if f.Sealed != nil {
		e.PHI, e.Subject = f.Sealed.Ciphertext, uuid.NullUUID{UUID: f.Sealed.Subject, Valid: true}
	}
	return e
}

// ReadEventLine reads an event line of an NDJSON export as the store
// held the event, as far as its hash goes. Anyone can recompute that hash
// (StoredEvent.ComputeHash is public, as is the database's function): a
// file's own hashes prove nothing, only its signed checkpoint does.
func ReadEventLine(line []byte, tenant chartstream.TenantID) (eventstore.StoredEvent, error) {
	var f fileEvent
	if err := json.Unmarshal(line, &f); err != nil || f.Record != "event" {
		return eventstore.StoredEvent{}, errors.New("not an event line of an export")
	}
	return f.stored(tenant), nil
}

// VerifyFile checks a full NDJSON export offline: every event's hash
// against its content as stored (payload, metadata and sealed PHI; the
// decrypted PHI is a reading aid the ciphertext vouches for), every
// stream's chain, and the running hash and count up to the export's
// checkpoint against what it signed. Only a validly signed checkpoint
// vouches for anything: a file without one has KindNoCheckpoint (or
// KindBadCheckpoint), one older than p.MinSeq KindCheckpointStale, and
// events after the checkpoint are KindUnanchored. It returns
// ErrNotVerifiable for a file no checkpoint can vouch for as a whole.
func VerifyFile(r io.Reader, p FileParams) (Report, error) {
	if p.Keys == nil {
		panic("audit: VerifyFile without Keys")
	}
	rep := Report{Findings: []Finding{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	if !sc.Scan() {
		return rep, ErrNotVerifiable
	}
	var head exportHeader
	if err := json.Unmarshal(sc.Bytes(), &head); err != nil || head.Record != "export" || head.Format != exportFormat {
		return rep, ErrNotVerifiable
	}
	if !head.Full {
		return rep, ErrNotVerifiable
	}
	rep.Tenant = head.Tenant
	ref := fileCheckpoint(head, p, &rep)
	params := eventstore.VerifyParams{}
	if ref != nil {
		// The lines carry sealed cursors: the anchor is passed after the
		// line whose cursor the checkpoint sealed as its last.
		params.Anchor = &eventstore.Cursor{}
	}
	walk := eventstore.NewWalk(head.Tenant, params)
	var firstUnanchored int
	var unanchored *eventstore.EventRef
	line, ended, passed := 1, false, false
	for sc.Scan() {
		line++
		var f fileEvent
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil || ended || (f.Record != "event" && f.Record != "end") {
			rep.add(Finding{Kind: KindMalformed, Detail: fmt.Sprintf("line %d is not an event of the export", line)})
			continue
		}
		if f.Record == "end" {
			ended = true
			if f.Events != rep.Events {
				rep.add(Finding{Kind: KindMalformed, Detail: fmt.Sprintf("the last line counts %d events, the file has %d", f.Events, rep.Events)})
			}
			continue
		}
		e := f.stored(head.Tenant)
		if passed && unanchored == nil {
			walk.PassAnchor()
			ev := e.Ref()
			unanchored, firstUnanchored = &ev, line
		}
		if broken := walk.Add(&e); broken != nil && len(rep.Findings) < maxFindings {
			rep.add(Finding{Kind: KindBrokenChain, Event: broken,
				Detail: fmt.Sprintf("%s at %s %s version %d (event %s, line %d)", broken.Reason, broken.Stream.Type, broken.Stream.ID, broken.Version, broken.EventID, line)})
		}
		passed = passed || (ref != nil && f.Cursor == ref.LastToken)
		rep.Events++
	}
	if err := sc.Err(); err != nil {
		return rep, fmt.Errorf("read the export: %w", err)
	}
	if !ended {
		rep.add(Finding{Kind: KindTruncated, Detail: "the export has no last line: it was cut short"})
	}
	data := walk.Report()
	rep.Streams = data.Streams
	if ref == nil {
		rep.Unanchored = rep.Events
		if head.Checkpoint == nil {
			rep.add(Finding{Kind: KindNoCheckpoint, Detail: fmt.Sprintf(
				"the export carries no checkpoint: nothing vouches for its %d events (stripped, or exported before the first was signed)", rep.Events)})
		}
	} else {
		rep.Anchored, rep.Unanchored = data.Anchored.Events, data.Unanchored
		compare(*ref, data.Anchored, &rep, placed{})
	}
	if unanchored != nil {
		rep.add(Finding{Kind: KindUnanchored, Seq: ref.Seq, At: unanchored, Detail: fmt.Sprintf(
			"%d events, from line %d (%s %s version %d, event %s) on, come after the export's checkpoint %d: no signed checkpoint covers them, "+
				"so nothing vouches for them (committed after it was signed, or rewritten by whoever chose an older checkpoint to carry); "+
				"verify an export made after the anchor covered them, or demand a newer checkpoint with --checkpoint-seq",
			rep.Unanchored, firstUnanchored, unanchored.Stream.Type, unanchored.Stream.ID, unanchored.Version, unanchored.EventID, ref.Seq)})
	}
	rep.finish()
	return rep, nil
}

// fileCheckpoint returns the file's checkpoint when it is validly signed
// for the file's tenant, noting in rep what is wrong with it otherwise.
func fileCheckpoint(head exportHeader, p FileParams, rep *Report) *eventstore.Checkpoint {
	ref := head.Checkpoint
	switch {
	case ref == nil:
		return nil
	case ref.Tenant != head.Tenant || CheckSignature(*ref, p.Keys) != nil:
		rep.add(Finding{Kind: KindBadCheckpoint, Seq: ref.Seq, Detail: fmt.Sprintf("the export's checkpoint %d is not validly signed for tenant %s", ref.Seq, head.Tenant)})
		return nil
	}
	rep.Checkpoint, rep.CheckpointSource = ref, "file"
	if ref.Seq < p.MinSeq {
		rep.add(Finding{Kind: KindCheckpointStale, Seq: ref.Seq, Detail: fmt.Sprintf(
			"the export carries checkpoint %d, older than checkpoint %d demanded: the events after it are vouched for by nothing in the file", ref.Seq, p.MinSeq)})
	}
	return ref
}

// maxFindings caps the broken streams a file's report lists.
const maxFindings = 100
