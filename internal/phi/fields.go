package phi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/chartstream/chartstream"
)

// Split moves the top-level fields named in phiFields out of payload, when
// present and not null, into a separate JSON object, so that only that object
// needs encrypting. The clear part keeps every other member in its original
// order with its value byte for byte; null PHI fields stay in it, as null
// holds no information. phiPart is nil when no PHI field was moved, so the
// caller needs no data key for the event.
//
// payload must be a single JSON object without duplicate member names (a
// duplicate could smuggle a second copy of a PHI field past the split);
// anything else yields a *chartstream.Error with code EINVALID. Error
// messages never echo payload keys or values, which may themselves be PHI.
func Split(payload json.RawMessage, phiFields []string) (clearPart, phiPart json.RawMessage, err error) {
	members, err := parseObject(payload, "payload")
	if err != nil {
		return nil, nil, err
	}
	phi := fieldSet(phiFields)
	var keep, move []member
	for _, m := range members {
		if phi[m.key] && string(m.value) != jsonNull {
			move = append(move, m)
		} else {
			keep = append(keep, m)
		}
	}
	if len(move) == 0 {
		return writeObject(keep), nil, nil
	}
	return writeObject(keep), writeObject(move), nil
}

// Merge reverses Split: it returns clearPart with the members of phiPart
// appended after its own, values byte for byte. An empty or nil phiPart
// returns clearPart unchanged. Either part not being a JSON object, or a
// member present in both, yields a *chartstream.Error with code EINVALID;
// since both parts come from storage, callers reading events should treat
// that as corruption rather than bad input.
func Merge(clearPart, phiPart json.RawMessage) (json.RawMessage, error) {
	members, err := parseObject(clearPart, "clear payload")
	if err != nil {
		return nil, err
	}
	if len(phiPart) == 0 {
		return clearPart, nil
	}
	phiMembers, err := parseObject(phiPart, "PHI payload")
	if err != nil {
		return nil, err
	}
	present := make(map[string]bool, len(members))
	for _, m := range members {
		present[m.key] = true
	}
	for _, m := range phiMembers {
		if present[m.key] {
			return nil, chartstream.Errorf(chartstream.EINVALID, "a PHI field is also in the clear payload")
		}
	}
	return writeObject(append(members, phiMembers...)), nil
}

// Erase renders an event whose PHI cannot be decrypted because its key was
// destroyed: it returns clearPart with every field of phiFields that is
// absent from it added as null, and the names of those fields, in phiFields
// order, for chartstream.Event.Erased.
//
// The clear part cannot tell a field that was encrypted from one the original
// payload never had, so with the event type's full PHI list every absent PHI
// field is reported as erased. Fields present in the clear part (null ones,
// which Split leaves there) are not. A clearPart that is not a JSON object
// yields a *chartstream.Error with code EINVALID.
func Erase(clearPart json.RawMessage, phiFields []string) (json.RawMessage, []string, error) {
	members, err := parseObject(clearPart, "clear payload")
	if err != nil {
		return nil, nil, err
	}
	present := make(map[string]bool, len(members))
	for _, m := range members {
		present[m.key] = true
	}
	var erased []string
	for _, f := range phiFields {
		if present[f] {
			continue
		}
		present[f] = true // a field listed twice is erased once
		members = append(members, member{key: f, value: json.RawMessage(jsonNull)})
		erased = append(erased, f)
	}
	return writeObject(members), erased, nil
}

// jsonNull is a constant, not a []byte variable, so no caller can mutate it.
const jsonNull = "null"

// member is one top-level name/value pair; a slice of them keeps the order
// that a map would lose.
type member struct {
	key   string
	value json.RawMessage
}

func fieldSet(fields []string) map[string]bool {
	set := make(map[string]bool, len(fields))
	for _, f := range fields {
		set[f] = true
	}
	return set
}

// parseObject reads one JSON object's members without decoding their values.
// what names the input in error messages, which never quote the input.
func parseObject(data []byte, what string) ([]member, error) {
	notObject := chartstream.Errorf(chartstream.EINVALID, "%s must be a JSON object", what)
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, notObject
	}
	var members []member
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, notObject
		}
		key, ok := tok.(string)
		if !ok {
			return nil, notObject
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, notObject
		}
		if seen[key] {
			return nil, chartstream.Errorf(chartstream.EINVALID, "%s has a duplicate field", what)
		}
		seen[key] = true
		members = append(members, member{key: key, value: value})
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, notObject
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, notObject // trailing data after the object
	}
	return members, nil
}

// writeObject re-encodes member names (escapes may change, meaning does not)
// and copies values verbatim.
func writeObject(members []member) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			b.WriteByte(',')
		}
		key, _ := json.Marshal(m.key) // a string always marshals
		b.Write(key)
		b.WriteByte(':')
		b.Write(m.value)
	}
	b.WriteByte('}')
	return b.Bytes()
}
