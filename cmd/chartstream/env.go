package main

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envAnnotation marks a flag with the environment variable that sets it.
const envAnnotation = "chartstream_env"

// envFlag registers the environment variable behind a flag and says so in
// the flag's help.
func envFlag(fs *pflag.FlagSet, flag, env string) {
	f := fs.Lookup(flag)
	if f == nil {
		panic("envFlag: no flag " + flag)
	}
	_ = fs.SetAnnotation(flag, envAnnotation, []string{env})
	f.Usage = fmt.Sprintf("%s (env %s)", f.Usage, env)
}

// stringFlag defines a string flag set by an environment variable.
func stringFlag(fs *pflag.FlagSet, p *string, flag, env, def, usage string) {
	fs.StringVar(p, flag, def, usage)
	envFlag(fs, flag, env)
}

// boolFlag defines a bool flag set by an environment variable.
func boolFlag(fs *pflag.FlagSet, p *bool, flag, env string, def bool, usage string) {
	fs.BoolVar(p, flag, def, usage)
	envFlag(fs, flag, env)
}

// intFlag defines an int flag set by an environment variable.
func intFlag(fs *pflag.FlagSet, p *int, flag, env string, def int, usage string) {
	fs.IntVar(p, flag, def, usage)
	envFlag(fs, flag, env)
}

// int64Flag defines an int64 flag set by an environment variable.
func int64Flag(fs *pflag.FlagSet, p *int64, flag, env string, def int64, usage string) {
	fs.Int64Var(p, flag, def, usage)
	envFlag(fs, flag, env)
}

// durationFlag defines a duration flag set by an environment variable.
func durationFlag(fs *pflag.FlagSet, p *time.Duration, flag, env string, def time.Duration, usage string) {
	fs.DurationVar(p, flag, def, usage)
	envFlag(fs, flag, env)
}

// fileSuffix names the variable that reads a setting from a file: X_FILE
// holds the path of a file whose content is X (trailing newlines dropped),
// so that containers can take secrets (database URLs with passwords) from
// mounted files rather than from their environment.
const fileSuffix = "_FILE"

// applyEnv sets every flag the user did not pass from its environment
// variable, or from the file its X_FILE variable names. A malformed value,
// an unreadable file, or both X and X_FILE set fails with one line naming
// the variable; a value the input rules refuse (strictInputs) exits 2.
func applyEnv(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		names := f.Annotations[envAnnotation]
		if err != nil || f.Changed || len(names) == 0 {
			return
		}
		name := names[0]
		v, verr := envValue(name)
		if verr != nil {
			err = verr
			return
		}
		if v == "" {
			return
		}
		if setErr := f.Value.Set(v); errors.As(setErr, new(inputError)) {
			err = exitError{2, fmt.Errorf("%s %w", name, setErr)} // without the value
		} else if setErr != nil {
			err = fmt.Errorf("invalid %s: %v", name, setErr)
		}
	})
	return err
}

// envValue is the value of the variable name, or the content of the file
// that name_FILE points at; "" when neither is set.
func envValue(name string) (string, error) {
	v := os.Getenv(name)
	path := os.Getenv(name + fileSuffix)
	switch {
	case path == "":
		return v, nil
	case v != "":
		return "", fmt.Errorf("set %s or %s%s, not both", name, name, fileSuffix)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		// The path only: never the content, which may be a secret.
		return "", fmt.Errorf("invalid %s%s: cannot read %s", name, fileSuffix, path)
	}
	v = strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", fmt.Errorf("invalid %s%s: %s is empty", name, fileSuffix, path)
	}
	return v, nil
}

// required returns an error naming the first missing setting.
func required(settings ...[2]string) error {
	for _, s := range settings {
		if s[1] == "" {
			return fmt.Errorf("%s is required (set it or pass its flag)", s[0])
		}
	}
	return nil
}

// envVars returns the environment variables that cmd and its subcommands
// read, sorted, each once.
func envVars(cmd *cobra.Command) []string {
	seen := map[string]bool{}
	visitFlags(cmd, func(f *pflag.Flag) {
		for _, name := range f.Annotations[envAnnotation] {
			seen[name] = true
		}
	})
	return slices.Sorted(maps.Keys(seen))
}

// visitFlags calls fn for every flag of cmd and its subcommands, local and
// persistent (a persistent flag once per command that defines it).
func visitFlags(cmd *cobra.Command, fn func(*pflag.Flag)) {
	cmd.Flags().VisitAll(fn)
	cmd.PersistentFlags().VisitAll(fn)
	for _, sub := range cmd.Commands() {
		visitFlags(sub, fn)
	}
}
