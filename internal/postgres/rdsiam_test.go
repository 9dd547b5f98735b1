package postgres_test

import (
	"context"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
)

// A URL asks for RDS IAM tokens with chartstream_auth=aws-rds-iam, which
// never reaches PostgreSQL; as the token is a password, the URL must
// verify the server and carry no password of its own.
func TestAURLAsksForRDSIAMTokens(t *testing.T) {
	t.Parallel()
	raw, iam, err := postgres.TakeAuth("postgres://chartstream_app@db.example:5432/chartstream?sslmode=verify-full&chartstream_auth=aws-rds-iam&sslrootcert=%2Fca.pem")
	if err != nil || !iam || strings.Contains(raw, "chartstream_auth") || !strings.Contains(raw, "sslmode=verify-full") || !strings.Contains(raw, "sslrootcert=%2Fca.pem") {
		t.Errorf("TakeAuth: %q, %t, %v; want the URL without the parameter, and IAM", raw, iam, err)
	}
	if raw, iam, err := postgres.TakeAuth("postgres://u:p@h/db?sslmode=disable"); err != nil || iam || raw != "postgres://u:p@h/db?sslmode=disable" {
		t.Errorf("a URL without the parameter: %q, %t, %v; want it as it is", raw, iam, err)
	}
	for url, want := range map[string]string{
		"postgres://u@h/db?chartstream_auth=aws-rds-iam&sslmode=require":            "verify-full",
		"postgres://u@h/db?chartstream_auth=aws-rds-iam":                            "verify-full",
		"postgres://u:secret@h/db?chartstream_auth=aws-rds-iam&sslmode=verify-full": "no password",
		"postgres://u@h/db?chartstream_auth=kerberos&sslmode=verify-full":           "must be aws-rds-iam",
		"host=h user=u chartstream_auth=aws-rds-iam sslmode=verify-full":            "postgres:// URL",
	} {
		err := postgres.Config{URL: url}.Validate()
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: %v, want an error saying %q (and no password)", url, err, want)
		}
	}
}

// A token is signed for the connection's host, port and user, in the
// region, with the credentials, for 15 minutes, without a network call.
func TestRDSIAMTokens(t *testing.T) {
	t.Parallel()
	tokens, err := postgres.TokensOf(aws.Config{Region: "eu-west-2", Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")})
	if err != nil {
		t.Fatal(err)
	}
	token, err := tokens(context.Background(), "db.example.internal", 5432, "chartstream_app")
	if err != nil {
		t.Fatal(err)
	}
	q, err := url.ParseQuery(token[strings.IndexByte(token, '?')+1:])
	if err != nil || !strings.HasPrefix(token, "db.example.internal:5432?") || q.Get("Action") != "connect" || q.Get("DBUser") != "chartstream_app" ||
		!strings.HasPrefix(q.Get("X-Amz-Credential"), "AKIDEXAMPLE/") || !strings.HasSuffix(q.Get("X-Amz-Credential"), "/eu-west-2/rds-db/aws4_request") ||
		q.Get("X-Amz-Expires") != "900" || len(q.Get("X-Amz-Signature")) != 64 {
		t.Errorf("token %q", token)
	}
	if _, err := postgres.TokensOf(aws.Config{Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")}); err == nil {
		t.Error("tokens without a region: want an error")
	}
}

// A pool with a PasswordFunc asks it for each new connection's password:
// the URL holds none, and a wrong answer is refused by the server.
func TestConnectAsksEachConnectionForItsPassword(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(testkit.Env(t, "DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	user := u.User.Username()
	u.User = url.User(user)
	var asked atomic.Int32
	pool, err := postgres.Connect(testkit.Context(t), postgres.Config{URL: u.String(), MaxConns: 2,
		Password: func(_ context.Context, host string, port uint16, as string) (string, error) {
			asked.Add(1)
			if as != user || host == "" || port == 0 {
				t.Errorf("asked for %s@%s:%d", as, host, port)
			}
			return password, nil
		}})
	if err != nil {
		t.Fatalf("connect with the password given per connection: %v", err)
	}
	pool.Close()
	if asked.Load() < 1 {
		t.Error("the PasswordFunc was never asked")
	}
	if _, err := postgres.Connect(testkit.Context(t), postgres.Config{URL: u.String(), MaxConns: 1,
		Password: func(context.Context, string, uint16, string) (string, error) { return "not-the-password", nil }}); err == nil {
		t.Error("a wrong password from the PasswordFunc connected")
	}
}
