package auth

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/strictjson"
)

// maxTokenBytes refuses absurdly long tokens before any decoding work. Real
// access tokens are a few KiB at most.
const maxTokenBytes = 16 << 10

// jwksWaitMax bounds how long a Verify call waits for the unknown-kid rate
// limiter and the refetch it allows; a caller past that gets "signing key
// unknown" rather than a hung request.
const jwksWaitMax = 10 * time.Second

// Token is a verified access token.
type Token struct {
	// Principal is the caller the token authenticates.
	Principal chartstream.Principal
	// ExpiresAt is the token's "exp"; a revocation entry for TokenID need
	// live no longer than this (plus the leeway).
	ExpiresAt time.Time
	// IssuedAt is the token's "iat", zero if the token has none.
	IssuedAt time.Time
}

// Verifier checks bearer tokens against one issuer, audience and key source.
// It is safe for concurrent use.
type Verifier struct {
	cfg    Config
	parser *jwt.Parser
	static crypto.PublicKey // from PublicKeyFile, or nil
	dev    *DevKey          // nil unless AllowDevKey and DevKeyFile
	jwks   keyfunc.Keyfunc  // nil unless JWKSURL
	cancel context.CancelFunc
	now    func() time.Time // replaced in tests
	cache  verifiedCache
}

// NewVerifier validates cfg, loads its keys and returns a Verifier. With a
// JWKSURL it fetches the key set once (failing if that fetch fails, so a
// wrong URL stops the deploy instead of refusing every token) and then
// refreshes it in the background until ctx is done or Close is called.
// Errors are configuration, file or fetch errors; none is a *chartstream.Error.
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	cfg.Algorithms = slices.Clone(cfg.Algorithms)
	v := &Verifier{cfg: cfg, now: time.Now, cancel: func() {}}

	if cfg.PublicKeyFile != "" {
		key, err := loadPublicKeyFile(cfg.PublicKeyFile)
		if err != nil {
			return nil, err
		}
		if len(algorithmsFor(key, cfg.Algorithms)) == 0 {
			return nil, fmt.Errorf("auth: public key file %s: no allowed algorithm (%v) fits a %T", cfg.PublicKeyFile, cfg.Algorithms, key)
		}
		v.static = key
	}
	if cfg.DevKeyFile != "" && cfg.AllowDevKey {
		key, err := LoadDevKey(cfg.DevKeyFile)
		if err != nil {
			return nil, err
		}
		v.dev = key
	}
	if cfg.JWKSURL != "" {
		ctx, cancel := context.WithCancel(ctx)
		failFast := false
		logger := cfg.Logger
		kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
			Client:                    cfg.HTTPClient,
			HTTPTimeout:               jwksWaitMax,
			NoErrorReturnFirstHTTPReq: &failFast,
			RateLimitWaitMax:          jwksWaitMax,
			RefreshInterval:           cfg.JWKSRefreshInterval,
			RefreshUnknownKID:         rate.NewLimiter(rate.Every(cfg.JWKSUnknownKIDInterval), 1),
			RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
				return func(ctx context.Context, err error) {
					logger.WarnContext(ctx, "auth: JWKS refresh failed", "url", u, "error", err)
				}
			},
		})
		if err != nil {
			cancel()
			return nil, fmt.Errorf("auth: load JWKS: %w", err)
		}
		v.jwks, v.cancel = kf, cancel
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(cfg.Algorithms),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
	)
	return v, nil
}

// Close stops the background key set refresh. It is idempotent and safe to
// call on a Verifier without a JWKSURL.
func (v *Verifier) Close() { v.cancel() }

// Verify checks raw (the token without its "Bearer " prefix): signature,
// algorithm, issuer, audience, exp (required), nbf and iat (when present),
// then the subject, tenant and roles claims. ctx bounds any key set refetch
// an unknown kid triggers. Every failure is a *chartstream.Error with code
// EUNAUTHORIZED, a stable PHI-free message and the cause in Err.
func (v *Verifier) Verify(ctx context.Context, raw string) (Token, error) {
	if raw == "" || len(raw) > maxTokenBytes {
		return Token{}, unauthorized(msgMalformed, errors.New("token empty or too long"))
	}
	key, now := sha256.Sum256([]byte(raw)), v.now()
	if tok, ok := v.cache.get(key, now); ok {
		return tok, nil
	}
	tok, err := v.parser.Parse(raw, v.keyfunc(ctx))
	if err != nil {
		if tok != nil && !v.algorithmAllowed(tok) {
			return Token{}, unauthorized(msgAlgorithm, err)
		}
		return Token{}, parseFailure(err)
	}
	claims, ok := tok.Claims.(jwt.MapClaims)
	if !ok {
		return Token{}, unauthorized(msgInvalid, fmt.Errorf("unexpected claims type %T", tok.Claims))
	}
	if err := strictPayload(raw); err != nil {
		return Token{}, unauthorized(msgMalformed, err)
	}
	p, perr := v.principal(claims)
	if perr != nil {
		return Token{}, perr
	}
	out := Token{Principal: p}
	// The parser has already required and checked exp, and checked iat.
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		out.ExpiresAt = exp.Time
	}
	if iat, err := claims.GetIssuedAt(); err == nil && iat != nil {
		out.IssuedAt = iat.Time
	}
	until := now.Add(verifiedTTL)
	if exp := out.ExpiresAt.Add(v.cfg.Leeway); exp.Before(until) {
		until = exp
	}
	v.cache.put(key, out, until)
	return out, nil
}

// strictPayload refuses a signed payload that the JSON decoder would have
// repaired: invalid UTF-8 (made U+FFFD), a claim given twice (the last
// wins), trailing data. The subject becomes the actor recorded with every
// event the token's holder writes, for ever, so it is taken exactly as the
// identity provider signed it or not at all.
func strictPayload(raw string) error {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return errors.New("token is not three segments")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("payload encoding: %w", err)
	}
	return strictjson.Check(payload, strictjson.Limits{MaxString: maxClaimLength})
}

// algorithmAllowed tells an algorithm outside the allow-list (including
// "none", HS* and unknown names, which the parser reports as signature or
// verifiability errors) from other failures, for a clearer message.
func (v *Verifier) algorithmAllowed(tok *jwt.Token) bool {
	alg, _ := tok.Header["alg"].(string)
	if alg == "" {
		return true // no header parsed: let parseFailure call it malformed
	}
	return slices.Contains(v.cfg.Algorithms, alg)
}

// keyfunc picks the verification key. The dev key is matched by kid only,
// so it never verifies a token meant for the provider's key. The static
// key ignores kid, since a PEM file carries none. The JWKS key is looked
// up by kid (refetching on an unknown one, rate-limited). Whatever the
// source, the key must fit the token's algorithm family.
func (v *Verifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(tok *jwt.Token) (any, error) {
		if _, ok := tok.Header["crit"]; ok {
			// RFC 7515 §4.1.11: extensions we do not understand must
			// make the token invalid.
			return nil, errCritHeader
		}
		kid, _ := tok.Header["kid"].(string)
		switch {
		case v.dev != nil && kid != "" && kid == v.dev.kid:
			return fitting(tok.Method, v.dev.Public())
		case v.static != nil:
			return fitting(tok.Method, v.static)
		case v.jwks != nil:
			key, err := v.jwks.KeyfuncCtx(ctx)(tok)
			if err != nil {
				// Not found, refetch refused by the rate limiter or
				// failed, or a JWK whose "alg" differs from the token's:
				// to the caller all mean "no key for this token".
				return nil, fmt.Errorf("%w: %w", errUnknownKey, err)
			}
			if set, ok := key.(jwt.VerificationKeySet); ok {
				// No kid: try only the keys of the right family that
				// are strong enough.
				var fit jwt.VerificationKeySet
				for _, k := range set.Keys {
					if keyFits(tok.Method, k) && checkPublicKey(k) == nil {
						fit.Keys = append(fit.Keys, k)
					}
				}
				if len(fit.Keys) == 0 {
					return nil, errUnknownKey
				}
				return fit, nil
			}
			// A key from the provider meets the same bar as a key file:
			// a short RSA key is refused, however it was published.
			if err := checkPublicKey(key); err != nil {
				return nil, fmt.Errorf("%w: %w", errWeakKey, err)
			}
			return fitting(tok.Method, key)
		}
		return nil, errUnknownKey
	}
}

// errWeakKey is a provider key below the bar a key file must meet.
var errWeakKey = errors.New("auth: the provider's key is too weak")

func fitting(method jwt.SigningMethod, key any) (any, error) {
	if !keyFits(method, key) {
		return nil, errKeyMismatch
	}
	return key, nil
}
