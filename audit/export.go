package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
)

// Export formats.
const (
	FormatNDJSON = "ndjson"
	FormatCSV    = "csv"
)

// exportFormat names the NDJSON layout in its first line.
const exportFormat = "chartstream-export/v2"

// Records is what an export reads: eventstore.Store.Records.
type Records interface {
	Records(ctx context.Context, tenant chartstream.TenantID, f eventstore.RecordFilter, fn eventstore.RecordFn) error
}

// ExportParams says what to export and how.
type ExportParams struct {
	Tenant chartstream.TenantID
	Filter eventstore.RecordFilter
	// Format is FormatNDJSON or FormatCSV.
	Format string
	// Checkpoint is the newest valid checkpoint when the export began
	// (nil for none); an NDJSON export carries it, so that a full export
	// can be verified offline (VerifyFile).
	Checkpoint *eventstore.Checkpoint
	// Cursors seal each event's cursor (the tenant's
	// eventstore.CursorCodec): an export names where its events are, and
	// resumes, without the global commit position. Required.
	Cursors CursorSealer
	// Progress, when set, is told the events written so far, now and
	// then.
	Progress func(events int64)
}

// CursorSealer seals the tenant's cursors: eventstore.CursorCodec.
type CursorSealer interface {
	Seal(c eventstore.Cursor) string
	AppendSeal(dst []byte, c eventstore.Cursor) []byte
}

// UpToCheckpoint ends the export with the last event p.Checkpoint covers,
// so that a full export verifies with no event left unanchored (exit 0
// rather than 3 for a tenant written to all the time). ECONFLICT when no
// checkpoint has been signed yet.
func (p *ExportParams) UpToCheckpoint() error {
	if p.Checkpoint == nil || p.Checkpoint.Last == (eventstore.Cursor{}) {
		return chartstream.Errorf(chartstream.ECONFLICT, "no signed checkpoint covers the tenant's events yet; retry once the anchor has signed one")
	}
	p.Filter.UpTo = p.Checkpoint.Last
	return nil
}

// ExportSummary says what an export wrote.
type ExportSummary struct {
	Events int64
	// Last is the last event's cursor: resume after it.
	Last eventstore.Cursor
}

// Export writes the tenant's events the filter selects to w, in commit
// order, as they are stored (each with its metadata, its hash and its
// predecessor's), with PHI decrypted (or marked erased): NDJSON, a first
// line describing the export and its checkpoint, one line per event and a
// last line saying it is complete; or CSV, a header row and one row per
// event. Rows stream from the store to w: memory stays constant.
func Export(ctx context.Context, src Records, w io.Writer, p ExportParams) (ExportSummary, error) {
	var sum ExportSummary
	if p.Cursors == nil {
		panic("audit: Export without Cursors")
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var write eventstore.RecordFn
	switch p.Format {
	case FormatNDJSON:
		if err := writeHeader(bw, p); err != nil {
			return sum, err
		}
		var line []byte
		write = func(r *eventstore.Record) error {
			line = appendEventLine(line[:0], r, p.Cursors)
			_, err := bw.Write(line)
			return err
		}
	case FormatCSV:
		cw := csv.NewWriter(bw)
		if err := cw.Write(csvHeader); err != nil {
			return sum, err
		}
		defer cw.Flush()
		row := make([]string, len(csvHeader))
		write = func(r *eventstore.Record) error { return cw.Write(csvRow(row, r, p.Cursors)) }
	default:
		return sum, chartstream.Invalid(chartstream.FieldError{Field: "format", Reason: "must be ndjson or csv"})
	}
	err := src.Records(ctx, p.Tenant, p.Filter, func(r *eventstore.Record) error {
		if err := write(r); err != nil {
			return err
		}
		sum.Events++
		sum.Last = r.Cursor()
		if p.Progress != nil && sum.Events%10000 == 0 {
			p.Progress(sum.Events)
		}
		return nil
	})
	if err != nil {
		return sum, err
	}
	if p.Format == FormatNDJSON {
		end, err := json.Marshal(exportEnd{Record: "end", Events: sum.Events, Last: lastCursor(sum, p.Cursors)})
		if err != nil {
			return sum, err
		}
		if _, err := bw.Write(append(end, '\n')); err != nil {
			return sum, err
		}
	}
	if p.Progress != nil {
		p.Progress(sum.Events)
	}
	return sum, bw.Flush()
}

// exportHeader is an NDJSON export's first line.
type exportHeader struct {
	Record     string                 `json:"record"` // "export"
	Format     string                 `json:"format"`
	Tenant     chartstream.TenantID   `json:"tenant_id"`
	ExportedAt time.Time              `json:"exported_at"`
	Filter     exportFilter           `json:"filter"`
	Full       bool                   `json:"full"`
	Checkpoint *eventstore.Checkpoint `json:"checkpoint"`
}

type exportFilter struct {
	After      string     `json:"after,omitempty"`
	UpTo       string     `json:"up_to,omitempty"`
	Since      *time.Time `json:"since,omitempty"`
	Until      *time.Time `json:"until,omitempty"`
	StreamType string     `json:"stream_type,omitempty"`
	EventType  string     `json:"event_type,omitempty"`
	Patient    *uuid.UUID `json:"patient,omitempty"`
	Limit      int        `json:"limit,omitempty"`
}

// exportEnd is an NDJSON export's last line: without it, the export was
// cut short (resume after the last event line's cursor).
type exportEnd struct {
	Record string  `json:"record"` // "end"
	Events int64   `json:"events"`
	Last   *string `json:"last"`
}

func lastCursor(s ExportSummary, cursors CursorSealer) *string {
	if s.Events == 0 {
		return nil
	}
	c := cursors.Seal(s.Last)
	return &c
}

func writeHeader(w io.Writer, p ExportParams) error {
	f := p.Filter
	h := exportHeader{Record: "export", Format: exportFormat, Tenant: p.Tenant, ExportedAt: time.Now().UTC(), Full: f.Full(), Checkpoint: p.Checkpoint,
		Filter: exportFilter{StreamType: f.StreamType, EventType: f.EventType, Limit: f.Limit}}
	if f.After != (eventstore.Cursor{}) {
		h.Filter.After = p.Cursors.Seal(f.After)
	}
	if f.UpTo != (eventstore.Cursor{}) {
		h.Filter.UpTo = p.Cursors.Seal(f.UpTo)
	}
	if !f.Since.IsZero() {
		h.Filter.Since = &f.Since
	}
	if !f.Until.IsZero() {
		h.Filter.Until = &f.Until
	}
	if f.Patient.ID != uuid.Nil {
		h.Filter.Patient = &f.Patient.ID
	}
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// appendEventLine appends r as one NDJSON line. Payload and metadata are
// PostgreSQL's canonical jsonb text, copied byte for byte (the hash covers
// those bytes, and that text is one line of valid JSON); the decrypted PHI
// is compacted.
func appendEventLine(b []byte, r *eventstore.Record, cursors CursorSealer) []byte {
	b = append(b, `{"record":"event","cursor":"`...)
	b = cursors.AppendSeal(b, r.Cursor()) // "c1." and URL-safe base64: the same in JSON
	b = append(b, `","stream_type":`...)
	b = strconv.AppendQuote(b, r.StreamType) // [a-z0-9_]: the same in JSON
	b = append(b, `,"stream_id":"`...)
	b = appendUUID(b, r.StreamID)
	b = append(b, `","version":`...)
	b = strconv.AppendInt(b, r.Version, 10)
	b = append(b, `,"event_id":"`...)
	b = appendUUID(b, r.EventID)
	b = append(b, `","event_type":`...)
	b = strconv.AppendQuote(b, r.EventType) // [a-z0-9_.]: the same in JSON
	b = append(b, `,"schema_version":`...)
	b = strconv.AppendInt(b, int64(r.SchemaVersion), 10)
	b = append(b, `,"recorded_at":"`...)
	b = r.RecordedAt().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","metadata":`...)
	b = append(b, r.Metadata...)
	b = append(b, `,"payload":`...)
	b = append(b, r.Payload...)
	b = append(b, `,"phi":`...)
	b = appendPHI(b, r)
	if r.PHI != nil {
		b = append(b, `,"sealed":{"subject":"`...)
		b = appendUUID(b, r.Subject.UUID)
		b = append(b, `","ciphertext":"`...)
		b = base64.StdEncoding.AppendEncode(b, r.PHI)
		b = append(b, `"}`...)
	}
	b = append(b, `,"prev_hash":`...)
	b = appendHash(b, r.PrevHash)
	b = append(b, `,"hash":`...)
	b = appendHash(b, r.Hash)
	return append(b, "}\n"...)
}

// appendPHI appends the decrypted PHI object, or null and the erased
// fields' names.
func appendPHI(b []byte, r *eventstore.Record) []byte {
	if r.Opened == nil {
		b = append(b, "null"...)
		if len(r.Erased) > 0 {
			names, _ := json.Marshal(r.Erased)
			b = append(append(b, `,"erased":`...), names...)
		}
		return b
	}
	c := bytes.NewBuffer(b)
	if err := json.Compact(c, r.Opened); err != nil {
		return append(b, "null"...) // sealed by us from valid JSON: unreachable
	}
	return c.Bytes()
}

func appendHash(b []byte, h []byte) []byte {
	if h == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = hex.AppendEncode(b, h)
	return append(b, '"')
}

func appendUUID(b []byte, u uuid.UUID) []byte {
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return append(b, s[:]...)
}

// csvHeader names the CSV columns.
var csvHeader = []string{"cursor", "recorded_at", "stream_type", "stream_id", "version", "event_id", "event_type",
	"schema_version", "actor", "roles", "correlation_id", "request_id", "metadata", "payload", "phi", "erased", "prev_hash", "hash"}

// csvRow fills row with r's columns.
func csvRow(row []string, r *eventstore.Record, cursors CursorSealer) []string {
	var md chartstream.Metadata
	_ = json.Unmarshal(r.Metadata, &md) // stored by us; an unreadable one leaves the columns empty
	roles, _ := json.Marshal(md.Roles)
	erased := ""
	if len(r.Erased) > 0 {
		b, _ := json.Marshal(r.Erased)
		erased = string(b)
	}
	phiText := ""
	if r.Opened != nil {
		phiText = string(appendPHI(nil, r))
	}
	copy(row, []string{cursors.Seal(r.Cursor()), r.RecordedAt().Format(time.RFC3339Nano),
		r.StreamType, r.StreamID.String(), strconv.FormatInt(r.Version, 10), r.EventID.String(), r.EventType,
		strconv.FormatInt(int64(r.SchemaVersion), 10), md.Actor, string(roles), md.CorrelationID, md.RequestID,
		string(r.Metadata), string(r.Payload), phiText, erased, hex.EncodeToString(r.PrevHash), hex.EncodeToString(r.Hash)})
	return row
}

// ParseFormat checks an export format name. Errors: EINVALID.
func ParseFormat(s string) (string, error) {
	switch s {
	case FormatNDJSON, FormatCSV:
		return s, nil
	}
	return "", chartstream.Invalid(chartstream.FieldError{Field: "format", Reason: fmt.Sprintf("must be %s or %s", FormatNDJSON, FormatCSV)})
}
