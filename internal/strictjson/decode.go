package strictjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Decode decodes data into dst, a pointer to a struct, after Check: member
// names must match dst's json names exactly (encoding/json would take any
// case), every value must have its field's type, and the tags the OpenAPI
// document shows must hold: maxLength (characters) on strings, maxItems on
// arrays, minimum and maximum on numbers. A null leaves its field zero, as
// with encoding/json. Errors are EINVALID *chartstream.Error values naming
// the field, never quoting the input.
func Decode(data []byte, dst any, lim Limits) error {
	if err := Check(data, lim); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return syntax(nil) // Check accepted it: cannot happen
	}
	if err := conform(tree, reflect.TypeOf(dst).Elem(), nil, ""); err != nil {
		return err
	}
	dec = json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		// conform accepted it, so this is a field's own UnmarshalJSON,
		// whose message may quote the input: not passed on.
		return problem(nil, "does not match the expected shape")
	}
	return nil
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
)

// conform checks v, decoded with UseNumber, against type t with the struct
// tag of its field.
func conform(v any, t reflect.Type, p path, tag reflect.StructTag) error {
	if v == nil {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	pt := reflect.PointerTo(t)
	switch {
	case pt.Implements(jsonUnmarshaler):
		return nil // decodes itself
	case pt.Implements(textUnmarshaler):
		if _, ok := v.(string); !ok {
			return problem(p, "must be a string")
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return problem(p, "must be an object")
		}
		for _, name := range slices.Sorted(maps.Keys(obj)) {
			f, ok := fieldByName(t, name)
			if !ok {
				return problem(p.member(name), "is not a known field")
			}
			if err := conform(obj[name], f.Type, p.member(name), f.Tag); err != nil {
				return err
			}
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return problem(p, "must be an object")
		}
		for _, name := range slices.Sorted(maps.Keys(obj)) {
			if err := conform(obj[name], t.Elem(), p.member(name), ""); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		arr, ok := v.([]any)
		if !ok {
			return problem(p, "must be an array")
		}
		if n, ok := tagInt(tag, "maxItems"); ok && int64(len(arr)) > n {
			return problem(p, fmt.Sprintf("must have at most %d items", n))
		}
		for i, item := range arr {
			if err := conform(item, t.Elem(), p.index(i), ""); err != nil {
				return err
			}
		}
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return problem(p, "must be a string")
		}
		if n, ok := tagInt(tag, "maxLength"); ok && int64(utf8.RuneCountInString(s)) > n {
			return problem(p, fmt.Sprintf("must be at most %d characters", n))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return problem(p, "must be true or false")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return number(v, t, p, tag)
	case reflect.Interface:
		return nil
	default:
		return problem(p, "cannot be decoded") // a type no request uses
	}
	return nil
}

// number checks a number against its Go type and its minimum and maximum
// tags.
func number(v any, t reflect.Type, p path, tag reflect.StructTag) error {
	n, ok := v.(json.Number)
	if !ok {
		return problem(p, "must be a number")
	}
	var f float64
	switch t.Kind() {
	case reflect.Float32, reflect.Float64:
		var err error
		if f, err = strconv.ParseFloat(string(n), t.Bits()); err != nil {
			return problem(p, "must be a number in range")
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(string(n), 10, t.Bits())
		if err != nil {
			return problem(p, "must be a whole number in range")
		}
		f = float64(u)
	default:
		i, err := strconv.ParseInt(string(n), 10, t.Bits())
		if err != nil {
			return problem(p, "must be a whole number in range")
		}
		f = float64(i)
	}
	return Bounds(p.String(), f, tag)
}

// Bounds checks f against the minimum and maximum tags of its field,
// named field in the error.
func Bounds(field string, f float64, tag reflect.StructTag) error {
	lo, hasLo := tagFloat(tag, "minimum")
	hi, hasHi := tagFloat(tag, "maximum")
	if (hasLo && f < lo) || (hasHi && f > hi) {
		var want []string
		if hasLo {
			want = append(want, "at least "+strconv.FormatFloat(lo, 'f', -1, 64))
		}
		if hasHi {
			want = append(want, "at most "+strconv.FormatFloat(hi, 'f', -1, 64))
		}
		return problem(path{"." + field}, "must be "+strings.Join(want, " and "))
	}
	return nil
}

func tagInt(tag reflect.StructTag, key string) (int64, bool) {
	n, err := strconv.ParseInt(tag.Get(key), 10, 64)
	return n, err == nil
}

func tagFloat(tag reflect.StructTag, key string) (float64, bool) {
	f, err := strconv.ParseFloat(tag.Get(key), 64)
	return f, err == nil
}

// fieldByName finds the field of struct type t that encoding/json would
// fill from the member name, matching it exactly, through embedded structs.
func fieldByName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tagName, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tagName == "-" {
			continue
		}
		if f.Anonymous && tagName == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if inner, ok := fieldByName(ft, name); ok {
					return inner, true
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if tagName == "" {
			tagName = f.Name
		}
		if tagName == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
