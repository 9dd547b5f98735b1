package ratelimit

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/chartstream/chartstream"
)

// ParseOverrides parses per-tenant rates from an environment variable:
// comma-separated "tenant-uuid=requests-per-second" entries, for example
// "7f1d3c2e-5b6a-4c8d-9e0f-1a2b3c4d5e6f=500,0b9e...=2000". Spaces around
// entries are ignored and an empty string means no overrides. Only the rate
// is set; burst and in-flight bounds follow Limit's rules for overrides.
//
// It returns every bad entry at once (errors.Join), each error naming the
// entry's position and text: a tenant that is not a UUID, a rate that is not
// a positive integer, or a tenant listed twice.
func ParseOverrides(s string) (map[chartstream.TenantID]Limit, error) {
	out := make(map[chartstream.TenantID]Limit)
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	var errs []error
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		bad := func(reason string) {
			errs = append(errs, fmt.Errorf("ratelimit: override %d (%q): %s", i+1, entry, reason))
		}
		id, rate, ok := strings.Cut(entry, "=")
		if !ok {
			bad(`want "tenant-uuid=requests-per-second"`)
			continue
		}
		tenant, err := chartstream.ParseTenantID(strings.TrimSpace(id))
		if err != nil {
			bad("tenant must be a UUID")
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(rate))
		if err != nil || n <= 0 {
			bad("rate must be a positive integer")
			continue
		}
		if _, dup := out[tenant]; dup {
			bad("tenant listed twice")
			continue
		}
		out[tenant] = Limit{PerSecond: n}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
