package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// Defaults applied by NewVerifier to zero-valued Config fields.
const (
	DefaultTenantClaim            = "tenant_id"
	DefaultRolesClaim             = "roles"
	DefaultLeeway                 = 30 * time.Second
	DefaultJWKSRefreshInterval    = time.Hour
	DefaultJWKSUnknownKIDInterval = time.Minute
)

// maxLeeway bounds clock skew tolerance: a leeway of hours (a typo for
// seconds) would quietly extend every token's life.
const maxLeeway = 5 * time.Minute

// supportedAlgorithms are the only algorithms a Config may allow. All are
// asymmetric: an HMAC algorithm would let anyone holding the public key mint
// tokens, and "none" needs no key at all.
var supportedAlgorithms = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "PS256"}

// Config configures a Verifier. The zero value is not usable: Issuer,
// Audience and a key source are required.
type Config struct {
	// Issuer is the exact "iss" value accepted. Required.
	Issuer string
	// Audience must appear in the token's "aud" claim. Required.
	Audience string

	// JWKSURL is the identity provider's JSON Web Key Set. Optional, but one
	// of JWKSURL, PublicKeyFile and DevKeyFile is required, and JWKSURL and
	// PublicKeyFile exclude each other. It must be https unless its host is a
	// loopback address: keys fetched over plain HTTP could be replaced in
	// transit, which would let anyone mint tokens.
	JWKSURL string
	// PublicKeyFile is a PEM file holding the provider's RSA or EC public key
	// (PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE). Optional; see JWKSURL.
	PublicKeyFile string
	// DevKeyFile is the path of the development signing key (see
	// CreateDevKey). Optional; setting it without AllowDevKey is an error, so
	// a production config that names a dev key fails at start-up rather than
	// being silently ignored.
	DevKeyFile string
	// AllowDevKey lets tokens signed by DevKeyFile verify. Default false;
	// development only.
	AllowDevKey bool

	// TenantClaim names the claim holding the tenant id (a UUID). Default
	// "tenant_id"; Cognito-style providers use "custom:tenant_id".
	TenantClaim string
	// RolesClaim names the claim holding the roles: a JSON array of strings
	// or one space- or comma-separated string. Default "roles".
	RolesClaim string
	// Leeway tolerates clock skew when checking exp, nbf and iat. Default 30s
	// (zero means the default); at most 5m.
	Leeway time.Duration
	// AllowNoJTI accepts tokens without a "jti" claim. Default false: a
	// token that cannot be named cannot be revoked, so it is refused.
	AllowNoJTI bool
	// Algorithms is the allow-list of signing algorithms. Default RS256 and
	// ES256. Only RS256, RS384, RS512, ES256, ES384 and PS256 are accepted;
	// ES256 is needed for the dev key.
	Algorithms []string

	// JWKSRefreshInterval is how often the key set is refetched in the
	// background. Default 1h.
	JWKSRefreshInterval time.Duration
	// JWKSUnknownKIDInterval is the minimum time between refetches triggered
	// by a token with an unknown "kid", so forged kids cannot make us hammer
	// the provider. Default 1m.
	JWKSUnknownKIDInterval time.Duration
	// HTTPClient fetches the key set. Optional; default a client with a 10s
	// timeout.
	HTTPClient *http.Client
	// Logger receives background key set refresh failures. Optional; default
	// slog.Default().
	Logger *slog.Logger
}

// setDefaults fills zero-valued optional fields.
func (c *Config) setDefaults() {
	if c.TenantClaim == "" {
		c.TenantClaim = DefaultTenantClaim
	}
	if c.RolesClaim == "" {
		c.RolesClaim = DefaultRolesClaim
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = []string{"RS256", "ES256"}
	}
	if c.JWKSRefreshInterval == 0 {
		c.JWKSRefreshInterval = DefaultJWKSRefreshInterval
	}
	if c.JWKSUnknownKIDInterval == 0 {
		c.JWKSUnknownKIDInterval = DefaultJWKSUnknownKIDInterval
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem with c at once, joined with errors.Join.
// Zero-valued optional fields are valid (they take their defaults), so
// Validate may be called before or after defaults are applied.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("auth: "+format, args...)) }

	if c.Issuer == "" {
		add("Issuer is required")
	}
	if c.Audience == "" {
		add("Audience is required")
	}
	if c.JWKSURL == "" && c.PublicKeyFile == "" && c.DevKeyFile == "" {
		add("one of JWKSURL, PublicKeyFile or DevKeyFile is required")
	}
	if c.JWKSURL != "" && c.PublicKeyFile != "" {
		add("JWKSURL and PublicKeyFile are mutually exclusive")
	}
	if c.JWKSURL != "" {
		if err := validateJWKSURL(c.JWKSURL); err != nil {
			errs = append(errs, err)
		}
	}
	if c.DevKeyFile != "" && !c.AllowDevKey {
		add("DevKeyFile is set but AllowDevKey is false")
	}
	if c.Leeway < 0 || c.Leeway > maxLeeway {
		add("Leeway must be between 0 and %s", maxLeeway)
	}
	for _, alg := range c.Algorithms {
		if !slices.Contains(supportedAlgorithms, alg) {
			add("algorithm %q is not accepted (want one of %v)", alg, supportedAlgorithms)
		}
	}
	if c.DevKeyFile != "" && c.AllowDevKey && len(c.Algorithms) > 0 && !slices.Contains(c.Algorithms, "ES256") {
		add("the dev key signs with ES256, which Algorithms does not allow")
	}
	if c.JWKSRefreshInterval < 0 {
		add("JWKSRefreshInterval must not be negative")
	}
	if c.JWKSUnknownKIDInterval < 0 {
		add("JWKSUnknownKIDInterval must not be negative")
	}
	return errors.Join(errs...)
}

// validateJWKSURL requires an absolute https URL, or http to a loopback host
// (a local test server or a provider on the same machine).
func validateJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("auth: JWKSURL must be an absolute URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
	}
	return errors.New("auth: JWKSURL must use https (http only for a loopback host)")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
