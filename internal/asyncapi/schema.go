package asyncapi

import (
	"encoding"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
)

// Schema is a JSON Schema (draft-07) as a JSON object.
type Schema = map[string]any

var (
	timeType     = reflect.TypeFor[time.Time]()
	uuidType     = reflect.TypeFor[uuid.UUID]()
	tenantType   = reflect.TypeFor[chartstream.TenantID]()
	rawType      = reflect.TypeFor[json.RawMessage]()
	bytesType    = reflect.TypeFor[[]byte]()
	textType     = reflect.TypeFor[encoding.TextMarshaler]()
	emptySchema  = Schema{}
	strictObject = func() Schema { return Schema{"type": "object", "additionalProperties": false, "properties": Schema{}} }
)

// typeSchema is the JSON Schema of what encoding/json makes of a value of
// type t: objects are closed (additionalProperties false), and a field
// without omitempty is required.
func typeSchema(t reflect.Type) Schema {
	switch {
	case t == timeType:
		return Schema{"type": "string", "format": "date-time"}
	case t == uuidType || t == tenantType:
		return Schema{"type": "string", "format": "uuid"}
	case t == rawType:
		return emptySchema
	case t == bytesType:
		return Schema{"type": "string", "contentEncoding": "base64"}
	case t.Kind() == reflect.Pointer:
		return typeSchema(t.Elem())
	case t.Implements(textType):
		return Schema{"type": "string"}
	}
	switch t.Kind() {
	case reflect.String:
		return Schema{"type": "string"}
	case reflect.Bool:
		return Schema{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return Schema{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return Schema{"type": "number"}
	case reflect.Slice, reflect.Array:
		return Schema{"type": "array", "items": typeSchema(t.Elem())}
	case reflect.Map:
		return Schema{"type": "object", "additionalProperties": typeSchema(t.Elem())}
	case reflect.Struct:
		return structSchema(t)
	}
	return emptySchema
}

// structSchema is the schema of a struct's JSON object.
func structSchema(t reflect.Type) Schema {
	s := strictObject()
	props := s["properties"].(Schema)
	var required []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = typeSchema(f.Type)
		if !slices.Contains(strings.Split(opts, ","), "omitempty") {
			required = append(required, name)
		}
	}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

// wirePayload is the schema of an event type's payload as the clinical
// stream carries it: its PHI fields are sealed (in the message's sealed
// ciphertext), so in the payload they are absent, or null when they were
// null.
func wirePayload(spec chartstream.EventSpec) Schema {
	s := typeSchema(reflect.TypeOf(spec.Payload))
	props := s["properties"].(Schema)
	for _, f := range spec.PHI {
		props[f] = Schema{"type": "null", "description": "PHI: sealed in sealed.ciphertext under the patient's key"}
	}
	if req, ok := s["required"].([]string); ok {
		req = slices.DeleteFunc(slices.Clone(req), func(f string) bool { return slices.Contains(spec.PHI, f) })
		if len(req) > 0 {
			s["required"] = req
		} else {
			delete(s, "required")
		}
	}
	return s
}

// envelope is the schema of a clinical message's body (chartstream.Event)
// for one event type.
func envelope(spec chartstream.EventSpec) Schema {
	s := typeSchema(reflect.TypeFor[chartstream.Event]())
	props := s["properties"].(Schema)
	props["type"] = Schema{"const": spec.Type}
	props["schema_version"] = Schema{"const": spec.SchemaVersion}
	props["payload"] = wirePayload(spec)
	props["version"] = Schema{"type": "integer", "minimum": 1}
	if len(spec.PHI) > 0 {
		props["erased"] = Schema{"type": "array", "items": Schema{"enum": spec.PHI}}
	}
	s["title"] = spec.Type + " v" + itoa(spec.SchemaVersion)
	return s
}
