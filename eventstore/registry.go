package eventstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/chartstream/chartstream"
)

// UpcastFn turns a payload of one schema version into the next version's
// shape. It sees the whole payload, PHI fields included.
type UpcastFn func(payload json.RawMessage) (json.RawMessage, error)

// Upcaster brings events of Type from schema version From to From+1.
type Upcaster struct {
	Type string
	From int
	Fn   UpcastFn
}

// Registry knows every event type the store accepts: its current schema
// version, which fields are PHI, and how old versions are upcast.
type Registry struct {
	specs     map[string]chartstream.EventSpec
	upcasters map[string]map[int]UpcastFn
}

// NewRegistry checks the specs and upcasters and returns a registry. Every
// type whose current version is n > 1 needs upcasters from 1 to n-1, so old
// events stay readable forever.
func NewRegistry(specs []chartstream.EventSpec, upcasters ...Upcaster) (*Registry, error) {
	r := &Registry{specs: make(map[string]chartstream.EventSpec), upcasters: make(map[string]map[int]UpcastFn)}
	var errs []error
	for _, s := range specs {
		if _, dup := r.specs[s.Type]; dup {
			errs = append(errs, fmt.Errorf("event type %q registered twice", s.Type))
		}
		if !eventTypePattern.MatchString(s.Type) {
			errs = append(errs, fmt.Errorf("event type %q is not a valid name", s.Type))
		}
		if s.SchemaVersion < 1 {
			errs = append(errs, fmt.Errorf("event type %q: schema version must be at least 1", s.Type))
		}
		if s.Subject != "" && slices.Contains(s.PHI, s.Subject) {
			errs = append(errs, fmt.Errorf("event type %q: subject field %q cannot also be PHI", s.Type, s.Subject))
		}
		r.specs[s.Type] = s
	}
	for _, u := range upcasters {
		if _, ok := r.specs[u.Type]; !ok {
			errs = append(errs, fmt.Errorf("upcaster for unknown event type %q", u.Type))
			continue
		}
		if r.upcasters[u.Type] == nil {
			r.upcasters[u.Type] = make(map[int]UpcastFn)
		}
		r.upcasters[u.Type][u.From] = u.Fn
	}
	for _, s := range r.specs {
		for v := 1; v < s.SchemaVersion; v++ {
			if r.upcasters[s.Type][v] == nil {
				errs = append(errs, fmt.Errorf("event type %q: no upcaster from version %d", s.Type, v))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// spec returns the spec of a registered type, or EINVALID.
func (r *Registry) spec(eventType string) (chartstream.EventSpec, error) {
	s, ok := r.specs[eventType]
	if !ok {
		return s, chartstream.Errorf(chartstream.EINVALID, "unknown event type %q", eventType)
	}
	return s, nil
}

// upcast brings payload from version to the type's current version. A
// version below 1 is EINVALID: no upcaster starts there (calling the
// missing one panicked), and the store never writes one, so it came from
// elsewhere (a message published by hand).
func (r *Registry) upcast(eventType string, version int, payload json.RawMessage) (json.RawMessage, int, error) {
	s, ok := r.specs[eventType]
	if !ok {
		// A type no longer registered is returned as stored.
		return payload, version, nil
	}
	if version < 1 && version < s.SchemaVersion {
		return nil, version, chartstream.Errorf(chartstream.EINVALID, "%s event has schema version %d; versions start at 1", eventType, version)
	}
	for ; version < s.SchemaVersion; version++ {
		var err error
		if payload, err = r.upcasters[eventType][version](payload); err != nil {
			return nil, version, fmt.Errorf("upcast %s from v%d: %w", eventType, version, err)
		}
	}
	return payload, version, nil
}
