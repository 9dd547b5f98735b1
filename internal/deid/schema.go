package deid

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Schema is a JSON Schema (draft-07) as a JSON object.
type Schema = map[string]any

// pseudonymSchema describes a pseudonym: 32 lowercase hex digits.
var pseudonymSchema = Schema{"type": "string", "pattern": "^[0-9a-f]{32}$"}

// MessageSchema is the JSON Schema of rule's de-identified messages: the
// envelope, and a payload holding only the fields the rule keeps.
func (d *Deidentifier) MessageSchema(r Rule) Schema {
	payload := Schema{"type": "object", "additionalProperties": false, "properties": Schema{}}
	for _, f := range r.Fields {
		name := f.Out
		if name == "" {
			name = f.Path
		}
		if f.Kind == BirthDate {
			top := ageCeiling - d.cfg.AgeSpanYears
			ages := make([]string, 0, top+1)
			for a := range top + 1 {
				ages = append(ages, dater{topAge: top}.ageOf(a))
			}
			payload["properties"].(Schema)["age"] = Schema{"enum": ages,
				"description": "age in whole years when the event was recorded; " + ages[top] + " is everyone that old or older (no birth date element is published)"}
			continue
		}
		place(payload, name, d.fieldSchema(f))
	}
	envelope := Schema{
		"tenant_id":      Schema{"type": "string", "format": "uuid"},
		"event_id":       pseudonymSchema,
		"type":           Schema{"const": r.Type},
		"schema_version": Schema{"const": r.SchemaVersion},
		"stream": Schema{"type": "object", "additionalProperties": false, "required": []string{"type"},
			"properties": Schema{"type": Schema{"type": "string"}, "id": pseudonymSchema}},
		"version":  Schema{"type": "integer", "minimum": 1},
		"patient":  pseudonymSchema,
		"recorded": d.dateSchema("date-time", "when the event was recorded"),
		"payload":  payload,
		"withheld": Schema{"enum": []string{WithheldErased, WithheldUnknownType, WithheldUnreadable},
			"description": "why the message carries no payload; erased: the patient's record was erased"},
	}
	return Schema{
		"title": r.Type + " v" + strconv.Itoa(r.SchemaVersion) + " (de-identified)",
		"type":  "object", "additionalProperties": false,
		"required":   []string{"tenant_id", "type", "schema_version", "stream"},
		"properties": envelope,
	}
}

// fieldSchema is the schema of one kept field's de-identified value.
func (d *Deidentifier) fieldSchema(f Field) Schema {
	switch f.Kind {
	case Pseudonym:
		return Schema{"type": "string", "pattern": "^[0-9a-f]{32}$", "description": "pseudonym of the " + f.Entity}
	case Code:
		return Schema{"type": "string", "pattern": codePattern.String()}
	case System:
		return Schema{"enum": slices.Sorted(maps.Keys(knownSystems))}
	case Enum:
		return Schema{"enum": f.Values}
	case Number:
		return Schema{"type": "number"}
	case Unit:
		return Schema{"type": "string", "pattern": unitPattern.String()}
	case Label:
		return Schema{"type": "string", "pattern": "^[0-9a-f]{32}$", "description": "pseudonym of the " + f.Entity + ": stable within the tenant, its text never published"}
	case Date:
		return d.dateSchema("date or date-time", "")
	case ZIP:
		return Schema{"type": "string", "pattern": "^[0-9]{3}$", "description": "first three digits; 000 where they cover under 20,000 people"}
	case Present:
		return Schema{"const": true}
	}
	return Schema{}
}

// dateSchema describes a de-identified date: a year, or a shifted date.
func (d *Deidentifier) dateSchema(shifted, description string) Schema {
	s := Schema{"type": "string", "pattern": "^[0-9]{4}$"}
	if d.cfg.Dates == DatesShift {
		s = Schema{"type": "string", "description": "shifted " + shifted + "; a year where the patient is unknown"}
	}
	if description != "" {
		s["description"] = description
	}
	return s
}

// place sets schema s at a dotted path of an object schema.
func place(obj Schema, path string, s Schema) {
	props := obj["properties"].(Schema)
	head, rest, nested := strings.Cut(path, ".")
	if !nested {
		props[head] = s
		return
	}
	inner, ok := props[head].(Schema)
	if !ok {
		inner = Schema{"type": "object", "additionalProperties": false, "properties": Schema{}}
		props[head] = inner
	}
	place(inner, rest, s)
}
