// Package decision runs the cycle every command shares (runner.go): load
// the aggregate (from a snapshot and the events after it), check the
// caller's expected version, decide, encode the events and append them on
// the condition the decision was taken on — deciding again on the new
// events when another writer changed what it depends on. It knows nothing
// about patients or orders.
package decision

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/chartstream/chartstream"
)

// Payload is an event payload with an explicit, stable type name. The name is
// written by hand, never derived by reflection, so renaming a Go type cannot
// rename stored events.
type Payload interface {
	EventType() string
}

// Claimer is implemented by payloads that reserve values unique within the
// tenant (see chartstream.UniqueClaim), such as a patient's MRN.
type Claimer interface {
	Claims() []chartstream.UniqueClaim
}

// Unmarshal decodes e's payload into dst after checking that e is at the
// schema version this code understands; an older one means an upcaster is
// missing, a newer one that this binary is older than the data. Erased PHI
// fields arrive as JSON null and leave dst's fields zero.
func Unmarshal(e chartstream.Event, schemaVersion int, dst any) error {
	if e.SchemaVersion != schemaVersion {
		return fmt.Errorf("%s event at version %d of %s stream %s: schema version %d, this code reads %d",
			e.Type, e.Version, e.Stream.Type, e.Stream.ID, e.SchemaVersion, schemaVersion)
	}
	if err := json.Unmarshal(e.Payload, dst); err != nil {
		return fmt.Errorf("decode %s event at version %d of %s stream %s: %w", e.Type, e.Version, e.Stream.Type, e.Stream.ID, err)
	}
	return nil
}

// VerifySpecs checks that specs, decode and payload samples agree: one spec
// per sample type, every PHI field and Subject named by a spec is a
// top-level JSON field of a fully populated sample, and every sample
// survives encoding and decode unchanged. A misspelt PHI field would store
// PHI unencrypted, so each aggregate's tests call this with one sample of
// every event.
func VerifySpecs[E Payload](specs []chartstream.EventSpec, decode func(chartstream.Event) (E, error), samples ...E) error {
	var errs []error
	seen := make(map[string]bool, len(samples))
	for _, sample := range samples {
		seen[sample.EventType()] = true
		i := slices.IndexFunc(specs, func(s chartstream.EventSpec) bool { return s.Type == sample.EventType() })
		if i < 0 {
			errs = append(errs, fmt.Errorf("%s: no spec", sample.EventType()))
			continue
		}
		body, err := json.Marshal(sample)
		if err != nil {
			return err
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil {
			return err
		}
		names := specs[i].PHI
		if specs[i].Subject != "" {
			names = append(slices.Clone(names), specs[i].Subject)
		}
		for _, name := range names {
			if _, ok := fields[name]; !ok {
				errs = append(errs, fmt.Errorf("%s: spec names field %q the payload does not have", sample.EventType(), name))
			}
		}
		decoded, err := decode(chartstream.Event{Type: sample.EventType(), SchemaVersion: specs[i].SchemaVersion, Payload: body})
		if err != nil || !reflect.DeepEqual(decoded, sample) {
			errs = append(errs, fmt.Errorf("%s: does not survive encoding and decoding (%v)", sample.EventType(), err))
		}
	}
	for _, s := range specs {
		if !seen[s.Type] {
			errs = append(errs, fmt.Errorf("%s: spec without a sample", s.Type))
		}
		if s.SchemaVersion < 1 {
			errs = append(errs, fmt.Errorf("%s: schema version must be at least 1", s.Type))
		}
	}
	return errors.Join(errs...)
}
