package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := Config{Issuer: testIssuer, Audience: testAudience, JWKSURL: "https://idp.test/jwks"}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr []string // substrings; nil means valid
	}{
		{name: "minimal JWKS", edit: func(*Config) {}},
		{name: "loopback http JWKS", edit: func(c *Config) { c.JWKSURL = "http://127.0.0.1:8080/jwks" }},
		{name: "localhost http JWKS", edit: func(c *Config) { c.JWKSURL = "http://localhost/jwks" }},
		{name: "dev key allowed", edit: func(c *Config) { c.JWKSURL, c.DevKeyFile, c.AllowDevKey = "", "dev.pem", true }},
		{name: "all algorithms", edit: func(c *Config) { c.Algorithms = supportedAlgorithms }},
		{name: "empty", edit: func(c *Config) { *c = Config{} },
			wantErr: []string{"Issuer is required", "Audience is required", "one of JWKSURL"}},
		{name: "remote http JWKS", edit: func(c *Config) { c.JWKSURL = "http://idp.test/jwks" }, wantErr: []string{"https"}},
		{name: "relative JWKS", edit: func(c *Config) { c.JWKSURL = "/jwks" }, wantErr: []string{"absolute"}},
		{name: "JWKS and PEM", edit: func(c *Config) { c.PublicKeyFile = "idp.pem" }, wantErr: []string{"mutually exclusive"}},
		{name: "dev key not allowed", edit: func(c *Config) { c.DevKeyFile = "dev.pem" }, wantErr: []string{"AllowDevKey is false"}},
		{name: "dev key without ES256", edit: func(c *Config) {
			c.DevKeyFile, c.AllowDevKey, c.Algorithms = "dev.pem", true, []string{"RS256"}
		}, wantErr: []string{"ES256"}},
		{name: "HS256", edit: func(c *Config) { c.Algorithms = []string{"RS256", "HS256"} }, wantErr: []string{`"HS256"`}},
		{name: "none", edit: func(c *Config) { c.Algorithms = []string{"none"} }, wantErr: []string{`"none"`}},
		{name: "negative leeway", edit: func(c *Config) { c.Leeway = -time.Second }, wantErr: []string{"Leeway"}},
		{name: "huge leeway", edit: func(c *Config) { c.Leeway = time.Hour }, wantErr: []string{"Leeway"}},
		{name: "negative intervals", edit: func(c *Config) { c.JWKSRefreshInterval, c.JWKSUnknownKIDInterval = -1, -1 },
			wantErr: []string{"JWKSRefreshInterval", "JWKSUnknownKIDInterval"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := ok
			tt.edit(&c)
			err := c.Validate()
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted the config")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	var c Config
	c.setDefaults()
	if c.TenantClaim != "tenant_id" || c.RolesClaim != "roles" || c.Leeway != 30*time.Second ||
		strings.Join(c.Algorithms, ",") != "RS256,ES256" || c.HTTPClient == nil || c.Logger == nil {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestLoadPublicKeyFileFormats(t *testing.T) {
	t.Parallel()
	key := MustRSAKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weakDER, _ := x509.MarshalPKIXPublicKey(&weak.PublicKey)
	tests := []struct {
		name    string
		blocks  []*pem.Block
		wantErr bool
	}{
		{"PKCS1", []*pem.Block{{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&key.PublicKey)}}, false},
		{"certificate after a comment block", []*pem.Block{{Type: "NOTE", Bytes: []byte("x")}, {Type: "CERTIFICATE", Bytes: certDER}}, false},
		{"RSA 1024", []*pem.Block{{Type: "PUBLIC KEY", Bytes: weakDER}}, true},
		{"private key only", []*pem.Block{{Type: "PRIVATE KEY", Bytes: []byte("x")}}, true},
		{"corrupt", []*pem.Block{{Type: "PUBLIC KEY", Bytes: []byte("x")}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var data []byte
			for _, b := range tt.blocks {
				data = append(data, pem.EncodeToMemory(b)...)
			}
			path := filepath.Join(t.TempDir(), "k.pem")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := loadPublicKeyFile(path)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && !key.PublicKey.Equal(got) {
				t.Fatal("loaded a different key")
			}
		})
	}
}
