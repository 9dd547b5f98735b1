package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
)

// Amazon RDS IAM database authentication: instead of a password kept in a
// secret, each connection presents a token signed with the process's AWS
// credentials (the pod's role on EKS, which Terraform allows rds-db:connect
// as the chartstream roles). A URL asks for it with
// chartstream_auth=aws-rds-iam, so every command that takes a database URL
// can use it and nothing else needs configuring; the region is AWS_REGION's
// (or the SDK's other sources). A token lasts 15 minutes and is made when a
// connection opens, so a pool never holds an expired one.

// authParam is the URL parameter naming how to log in; only Connect reads
// it, and it never reaches PostgreSQL.
const authParam = "chartstream_auth"

// AuthRDSIAM is authParam's value for RDS IAM tokens.
const AuthRDSIAM = "aws-rds-iam"

// takeAuth removes authParam from raw and reports whether it asks for RDS
// IAM tokens. A token travels as a password, so such a URL must verify the
// server (sslmode=verify-full, which RDS IAM requires anyway) and carry no
// password of its own.
func takeAuth(raw string) (string, bool, error) {
	if !strings.Contains(raw, authParam) {
		return raw, false, nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", false, fmt.Errorf("%s is taken in a postgres:// URL only", authParam)
	}
	q := u.Query()
	switch v := q[authParam]; {
	case len(v) != 1 || v[0] != AuthRDSIAM:
		return "", false, fmt.Errorf("%s must be %s", authParam, AuthRDSIAM)
	case q.Get("sslmode") != "verify-full":
		return "", false, fmt.Errorf("%s=%s needs sslmode=verify-full: the token is a password", authParam, AuthRDSIAM)
	}
	if _, has := u.User.Password(); has {
		return "", false, fmt.Errorf("a URL with %s=%s carries no password", authParam, AuthRDSIAM)
	}
	q.Del(authParam)
	u.RawQuery = q.Encode()
	return u.String(), true, nil
}

// rdsIAMPasswords returns the PasswordFunc of RDS IAM tokens signed with
// the default AWS configuration's credentials.
func rdsIAMPasswords(ctx context.Context) (PasswordFunc, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: AWS configuration: %w", AuthRDSIAM, err)
	}
	return tokensOf(cfg)
}

// tokensOf returns the PasswordFunc of RDS IAM tokens for cfg's region and
// credentials.
func tokensOf(cfg aws.Config) (PasswordFunc, error) {
	if cfg.Region == "" || cfg.Credentials == nil {
		return nil, errors.New(AuthRDSIAM + ": AWS_REGION and AWS credentials are required")
	}
	return func(ctx context.Context, host string, port uint16, user string) (string, error) {
		token, err := auth.BuildAuthToken(ctx, net.JoinHostPort(host, strconv.Itoa(int(port))), cfg.Region, user, cfg.Credentials)
		if err != nil {
			return "", fmt.Errorf("%s token: %w", AuthRDSIAM, err)
		}
		return token, nil
	}, nil
}
