package main

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The command line is held to the API's input rules: every flag value,
// environment setting and argument is UTF-8 without control characters and
// at most maxInput bytes, and a flag that takes one value is given once;
// anything else is one line and exit 2, before anything is connected. An
// operator id given to patient erase is recorded for ever, and a second
// --slug must not silently win over the first.

// maxInput bounds a flag value or setting (a URL, a path, a list of rate
// limit overrides); maxArg an argument (an id or a slug). A longer one is
// a mistake, refused, never truncated.
const (
	maxInput = 64 << 10
	maxArg   = 255
)

// flagLimits bound the flags that take ids, slugs and names, in bytes:
// the longest that can be right (a UUID, a slug's 63, a tenant name's
// 200), and 255 for the user and operator ids that events record.
var flagLimits = map[string]int{"tenant": 64, "patient": 64, "slug": 63, "name": 200, "actor": 255, "sub": 255, "role": 64}

// inputError is a flag value, setting or argument the rules refuse. Its
// message never repeats the value.
type inputError struct{ reason string }

func (e inputError) Error() string { return e.reason }

// checkInput applies the rules to one value of at most max bytes.
func checkInput(v string, max int) error {
	switch {
	case !utf8.ValidString(v):
		return inputError{"is not valid UTF-8"}
	case len(v) > max:
		return inputError{fmt.Sprintf("is longer than %d bytes", max)}
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return inputError{"contains a control character"}
	}
	return nil
}

// strictValue is a flag's value under the rules.
type strictValue struct {
	pflag.Value
	max       int
	once, set bool
}

func (s *strictValue) Set(v string) error {
	if s.once && s.set {
		return inputError{"is given more than once"}
	}
	if err := checkInput(v, s.max); err != nil {
		return err
	}
	s.set = true
	return s.Value.Set(v)
}

// strictInputs puts every flag of the command tree under the rules (list
// flags may repeat), and makes flag errors exit 2 without repeating a
// refused value. Call it once the tree is built.
func strictInputs(root *cobra.Command) {
	visitFlags(root, func(f *pflag.Flag) {
		if _, done := f.Value.(*strictValue); !done {
			t, max := f.Value.Type(), maxInput
			if n, ok := flagLimits[f.Name]; ok {
				max = n
			}
			f.Value = &strictValue{Value: f.Value, max: max, once: !strings.HasSuffix(t, "Slice") && !strings.HasSuffix(t, "Array")}
		}
	})
	root.SetFlagErrorFunc(flagError)
}

// flagError is every command's flag error: exit 2, one line, and for a
// value the rules refused, the flag and the reason without the value.
func flagError(_ *cobra.Command, err error) error {
	var invalid *pflag.InvalidValueError
	var refused inputError
	if errors.As(err, &invalid) && errors.As(err, &refused) {
		err = fmt.Errorf("--%s %s", invalid.GetFlag().Name, refused.reason)
	}
	return exitError{2, err}
}

// prepare is every command's PersistentPreRunE: arguments under the rules,
// then the environment applied to flags not given.
func prepare(cmd *cobra.Command, args []string) error {
	for i, a := range args {
		if err := checkInput(a, maxArg); err != nil {
			return exitError{2, fmt.Errorf("argument %d %w", i+1, err)}
		}
	}
	return applyEnv(cmd)
}
