package analytics_test

import (
	"errors"
	"strings"

	"github.com/chartstream/chartstream"
)

func asError(err error, target **chartstream.Error) bool { return errors.As(err, target) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }
