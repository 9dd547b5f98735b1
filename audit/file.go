package audit

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
)

// KindMalformed and KindTruncated are findings only a file can have: a
// line that is not an export's, and a file without its last line.
const (
	KindMalformed = "malformed"
	KindTruncated = "truncated"
)

// ErrNotVerifiable is a file no checkpoint can vouch for as a whole: not
// an NDJSON export, or a filtered, limited or resumed one.
var ErrNotVerifiable = errors.New("not a full NDJSON export (verify needs one made without since, until, filters, limit or cursor)")

// maxLine bounds one line: an event's payload is at most 256 KiB, its PHI
// is in it twice (sealed, base64, and open).
const maxLine = 4 << 20

// fileEvent is an event line as Export writes it.
type fileEvent struct {
	Record        string          `json:"record"`
	Position      int64           `json:"position"`
	TxID          int64           `json:"txid"`
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
	e := eventstore.StoredEvent{Position: f.Position, TxID: f.TxID, Tenant: tenant, StreamType: f.StreamType, StreamID: f.StreamID,
		Version: f.Version, EventID: f.EventID, EventType: f.EventType, SchemaVersion: f.SchemaVersion, Payload: f.Payload,
		Metadata: f.Metadata, RecordedMicros: f.RecordedAt.UnixMicro(), PrevHash: f.PrevHash, Hash: f.Hash}
	if f.Sealed != nil {
		e.PHI, e.Subject = f.Sealed.Ciphertext, uuid.NullUUID{UUID: f.Sealed.Subject, Valid: true}
	}
	return e
}

// VerifyFile checks a full NDJSON export offline, with the checkpoint
// signers' public keys: every event's hash against its content as stored
// (payload, metadata and sealed PHI; the decrypted PHI is a reading aid
// the ciphertext vouches for), every stream's chain, and the running hash
// and count up to the export's checkpoint against what it signed. Events
// after the checkpoint are reported as not anchored. It returns
// ErrNotVerifiable for a file no checkpoint can vouch for.
func VerifyFile(r io.Reader, keys SignatureVerifier) (Report, error) {
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
	ref := head.Checkpoint
	if ref != nil {
		if ref.Tenant != head.Tenant || CheckSignature(*ref, keys) != nil {
			rep.add(Finding{Kind: KindBadCheckpoint, Seq: ref.Seq, Detail: fmt.Sprintf("the export's checkpoint %d is not validly signed for tenant %s", ref.Seq, head.Tenant)})
			ref = nil
		} else {
			rep.Checkpoint, rep.CheckpointSource = ref, "file"
		}
	}
	check, h, chain := eventstore.NewChainCheck(), sha256.New(), eventstore.NewChain(head.Tenant)
	line, ended := 1, false
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
		computed, broken := check.Check(&e, h)
		if broken != nil && len(rep.Findings) < maxFindings {
			rep.add(Finding{Kind: KindBrokenChain, Event: broken,
				Detail: fmt.Sprintf("%s at %s %s version %d (event %s, line %d)", broken.Reason, broken.Stream.Type, broken.Stream.ID, broken.Version, broken.EventID, line)})
		}
		if ref != nil && !e.Cursor().After(ref.Last) {
			chain.Add(e.Cursor(), computed)
		} else {
			rep.Unanchored++
		}
		rep.Events++
	}
	if err := sc.Err(); err != nil {
		return rep, fmt.Errorf("read the export: %w", err)
	}
	if !ended {
		rep.add(Finding{Kind: KindTruncated, Detail: "the export has no last line: it was cut short"})
	}
	rep.Streams, rep.Anchored = check.Streams(), chain.Events
	if ref != nil {
		compare(*ref, chain, &rep)
	}
	rep.OK = len(rep.Findings) == 0
	return rep, nil
}

// maxFindings caps the broken streams a file's report lists.
const maxFindings = 100
