package deid

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
)

// Reasons a message carries no payload.
const (
	// WithheldErased: the patient's record was erased (its key
	// destroyed); nothing about the event is told but that it existed.
	WithheldErased = "erased"
	// WithheldUnknownType: no rule for the event type (an event type
	// newer than this de-identifier).
	WithheldUnknownType = "unknown_type"
	// WithheldUnreadable: the event cannot be read here (its PHI or the
	// tenant's key is sealed under a key this deployment cannot unwrap,
	// or the payload is not a JSON object).
	WithheldUnreadable = "unreadable"
)

// Deidentifier turns opened clinical events into de-identified messages.
type Deidentifier struct {
	rules map[string]Rule
	cfg   Config
}

// New returns a de-identifier for the registered event types. It fails
// when a registered type has no rule or a rule names a type not
// registered: no event type reaches consumers by default.
func New(specs []chartstream.EventSpec, cfg Config) (*Deidentifier, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Deidentifier{rules: make(map[string]Rule), cfg: cfg}
	for _, r := range Rules() {
		d.rules[r.Type] = r
	}
	var errs []error
	registered := make(map[string]bool)
	for _, s := range specs {
		registered[s.Type] = true
		r, ok := d.rules[s.Type]
		if !ok {
			errs = append(errs, fmt.Errorf("deid: event type %q has no de-identification rule", s.Type))
			continue
		}
		r.SchemaVersion = s.SchemaVersion
		d.rules[s.Type] = r
	}
	for t := range d.rules {
		if !registered[t] {
			errs = append(errs, fmt.Errorf("deid: rule for unregistered event type %q", t))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return d, nil
}

// Config returns the configuration in force, defaults applied.
func (d *Deidentifier) Config() Config { return d.cfg }

// Rules returns every rule, sorted by event type.
func (d *Deidentifier) Rules() []Rule {
	out := make([]Rule, 0, len(d.rules))
	for _, r := range d.rules {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Rule) int { return strings.Compare(a.Type, b.Type) })
	return out
}

// Rule returns the rule of an event type.
func (d *Deidentifier) Rule(eventType string) (Rule, bool) {
	r, ok := d.rules[eventType]
	return r, ok
}

// Input is one event to de-identify and what the worker learned of it.
type Input struct {
	// Event is opened (PHI in its payload) and upcast to the current
	// schema version.
	Event chartstream.Event
	// Key is the tenant's pseudonym key; nil when it cannot be read,
	// which withholds the event as unreadable.
	Key []byte
	// Patient is the patient the event is about; uuid.Nil when unknown.
	Patient uuid.UUID
	// Erased says the patient's record was erased.
	Erased bool
}

// Stream is a de-identified stream reference.
type Stream struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}

// Message is a de-identified event: the body of a CLINICAL_DEID message.
type Message struct {
	Tenant chartstream.TenantID `json:"tenant_id"`
	// EventID is the event's pseudonym; absent only from a message
	// withheld as unreadable for want of the tenant's key.
	EventID       string `json:"event_id,omitempty"`
	Type          string `json:"type"`
	SchemaVersion int    `json:"schema_version"`
	Stream        Stream `json:"stream"`
	Version       int64  `json:"version,omitempty"`
	// Patient is the pseudonym of the patient the event is about.
	Patient string `json:"patient,omitempty"`
	// Recorded is when the event was recorded: a year, or a shifted
	// timestamp.
	Recorded string         `json:"recorded,omitempty"`
	Payload  map[string]any `json:"payload,omitempty"`
	// Withheld says why the message has no payload.
	Withheld string `json:"withheld,omitempty"`
}

// Deidentify returns in's event de-identified.
func (d *Deidentifier) Deidentify(in Input) Message {
	e := in.Event
	m := Message{Tenant: e.Tenant, Type: e.Type, SchemaVersion: e.SchemaVersion, Stream: Stream{Type: e.Stream.Type}}
	if len(in.Key) == 0 {
		m.Withheld = WithheldUnreadable
		return m
	}
	keys := pseudonyms{key: in.Key}
	m.EventID = keys.id(EntityEvent, e.ID)
	rule, ok := d.rules[e.Type]
	switch {
	case !ok:
		m.Withheld = WithheldUnknownType
		return m
	case in.Erased && !rule.Erasure:
		m.Withheld = WithheldErased
		return m
	}
	payload, err := decodeObject(e.Payload)
	if err != nil {
		m.Withheld = WithheldUnreadable
		return m
	}
	if entity, ok := streamEntities[e.Stream.Type]; ok {
		m.Stream.ID = keys.id(entity, e.Stream.ID)
	}
	m.Version = e.Version
	dates := d.dates(keys, in.Patient)
	if in.Patient != uuid.Nil {
		m.Patient = keys.id(EntityPatient, in.Patient)
	}
	m.Recorded = dates.timestamp(e.RecordedAt)
	out := make(map[string]any)
	for _, f := range rule.Fields {
		v, ok := lookup(payload, f.Path)
		if !ok || v == nil {
			continue
		}
		apply(out, f, v, keys, dates, e)
	}
	if len(out) > 0 {
		m.Payload = out
	}
	return m
}

// apply de-identifies value v of field f into out; a value that does not
// fit the field's kind is dropped.
func apply(out map[string]any, f Field, v any, keys pseudonyms, dates dater, e chartstream.Event) {
	name := f.Out
	if name == "" {
		name = f.Path
	}
	s, isString := v.(string)
	switch f.Kind {
	case Pseudonym:
		if id, err := uuid.Parse(s); isString && err == nil {
			set(out, name, keys.id(f.Entity, id))
		}
	case Code:
		if isString && codePattern.MatchString(s) {
			set(out, name, s)
		}
	case System:
		if isString && knownSystems[s] {
			set(out, name, s)
		}
	case Enum:
		if isString && slices.Contains(f.Values, s) {
			set(out, name, s)
		}
	case Number:
		if n, ok := v.(json.Number); ok {
			set(out, name, n)
		}
	case Unit:
		if isString && unitPattern.MatchString(s) {
			set(out, name, s)
		}
	case Label:
		if isString && s != "" {
			set(out, name, keys.label(f.Entity, s))
		}
	case Date:
		if d, ok := dates.date(s); isString && ok {
			set(out, name, d)
		}
	case BirthDate:
		if isString {
			dates.birth(out, s, e.RecordedAt)
		}
	case ZIP:
		if z, ok := ZIP3(s); isString && ok {
			set(out, name, z)
		}
	case Present:
		set(out, name, true)
	}
}

// decodeObject decodes a payload object, numbers kept exact.
func decodeObject(payload json.RawMessage) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, errors.New("payload is not a JSON object")
	}
	return m, nil
}

// lookup finds a dotted path in nested objects.
func lookup(m map[string]any, path string) (any, bool) {
	head, rest, nested := strings.Cut(path, ".")
	v, ok := m[head]
	if !ok || !nested {
		return v, ok
	}
	inner, isObject := v.(map[string]any)
	if !isObject {
		return nil, false
	}
	return lookup(inner, rest)
}

// set puts v at a dotted path, making the objects on the way.
func set(m map[string]any, path string, v any) {
	head, rest, nested := strings.Cut(path, ".")
	if !nested {
		m[head] = v
		return
	}
	inner, ok := m[head].(map[string]any)
	if !ok {
		inner = make(map[string]any)
		m[head] = inner
	}
	set(inner, rest, v)
}
