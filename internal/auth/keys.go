package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/golang-jwt/jwt/v5"
)

// minRSABits refuses RSA keys too short to resist factoring.
const minRSABits = 2048

// maxPEMBytes bounds what is read from a key file, so a wrong path (a log, a
// device) is not read whole. Certificate chains stay well under it.
const maxPEMBytes = 64 << 10

// loadPublicKeyFile reads an RSA or EC public key from a PEM file holding a
// PUBLIC KEY (PKIX), RSA PUBLIC KEY (PKCS #1) or CERTIFICATE block; the first
// such block wins.
func loadPublicKeyFile(path string) (crypto.PublicKey, error) {
	raw, err := readLimited(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read public key file: %w", err)
	}
	for block, rest := pem.Decode(raw); block != nil; block, rest = pem.Decode(rest) {
		var key any
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = cert.PublicKey
			}
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("auth: public key file %s: %w", path, err)
		}
		if err := checkPublicKey(key); err != nil {
			return nil, fmt.Errorf("auth: public key file %s: %w", path, err)
		}
		return key, nil
	}
	return nil, fmt.Errorf("auth: public key file %s: no PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE block", path)
}

// checkPublicKey accepts RSA keys of at least minRSABits and EC keys on the
// curves an allowed algorithm can use.
func checkPublicKey(key any) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key has %d bits, want at least %d", k.N.BitLen(), minRSABits)
		}
		return nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return errors.New("EC key must be on P-256 or P-384")
		}
		return nil
	default:
		return fmt.Errorf("unsupported public key type %T (want RSA or EC)", key)
	}
}

// keyFits reports whether key may verify a token signed with method. The
// parser's allow-list already excludes HMAC and "none"; this check also
// keeps an RSA key from being offered to ES* or an EC key to the wrong curve,
// so the key, not the token's header, decides the algorithm family.
func keyFits(method jwt.SigningMethod, key any) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		switch method.(type) {
		case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
			return true
		}
	case *ecdsa.PublicKey:
		if m, ok := method.(*jwt.SigningMethodECDSA); ok {
			return m.CurveBits == k.Curve.Params().BitSize
		}
	}
	return false
}

// algorithmsFor lists which of algs key can verify, to refuse at start-up a
// static key that no allowed algorithm could use.
func algorithmsFor(key any, algs []string) []string {
	var fit []string
	for _, alg := range algs {
		if m := jwt.GetSigningMethod(alg); m != nil && keyFits(m, key) {
			fit = append(fit, alg)
		}
	}
	return fit
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxPEMBytes))
}
