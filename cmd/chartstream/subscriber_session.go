package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/messaging"
	"github.com/chartstream/chartstream/internal/natsauth"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/subscribers"
	"github.com/chartstream/chartstream/internal/tenants"
	"github.com/chartstream/chartstream/workers"
)

// session is what a subscriber command connected to.
type session struct {
	admin    *pgxpool.Pool
	tenants  *tenants.Admin
	registry *subscribers.Registry
	close    func()
}

// open connects to the database and, unless dbOnly, to NATS with what
// create (issuer) or revoke (revoker) needs.
func (p *subscriberParams) open(ctx context.Context, dbOnly, revoking bool) (*session, error) {
	if err := required([2]string{"DATABASE_ADMIN_URL", p.adminURL}); err != nil {
		return nil, exitError{2, err}
	}
	pool, err := postgres.Connect(ctx, postgres.Config{URL: p.adminURL, MaxConns: 2, ApplicationName: "chartstream-subscriber"})
	if err != nil {
		return nil, err
	}
	s := &session{admin: pool, tenants: tenants.NewAdmin(pool), close: pool.Close}
	if dbOnly {
		return s, nil
	}
	fail := func(err error) (*session, error) { s.close(); return nil, err }
	need := [][2]string{{"NATS_URL", p.natsURL}, {"NATS_CREDS_FILE", p.nats.CredsFile}, {"NATS_ACCOUNT_SIGNING_KEY_FILE", p.accountKey}}
	if revoking {
		need = append(need, [2]string{"NATS_SYSTEM_CREDS_FILE", p.systemCreds}, [2]string{"NATS_OPERATOR_SIGNING_KEY_FILE", p.operatorKey})
	}
	if err := required(need...); err != nil {
		return fail(exitError{2, err})
	}
	quiet := logging.New(io.Discard, slog.LevelError)
	natsCfg := p.nats
	natsCfg.URL, natsCfg.Name = p.natsURL, "chartstream-subscriber"
	nc, err := messaging.Connect(ctx, quiet, natsCfg)
	if err != nil {
		return fail(err)
	}
	closeDB := s.close
	s.close = func() { nc.Close(); closeDB() }
	js, err := jetstream.New(nc.Conn)
	if err != nil {
		return fail(err)
	}
	issuer, err := natsauth.LoadIssuer(p.accountKey, p.nats.CredsFile)
	if err != nil {
		return fail(err)
	}
	deps := subscribers.Deps{DB: pool, JetStream: js, Issuer: issuer, Revoker: noRevoker{}}
	if revoking {
		sys, err := messaging.Connect(ctx, quiet, messaging.Config{URL: p.natsURL, Name: "chartstream-subscriber-system", CredsFile: p.systemCreds,
			TLSCAFile: p.nats.TLSCAFile, TLSCertFile: p.nats.TLSCertFile, TLSKeyFile: p.nats.TLSKeyFile})
		if err != nil {
			return fail(fmt.Errorf("NATS system account: %w", err))
		}
		closeRest := s.close
		s.close = func() { sys.Close(); closeRest() }
		if deps.Revoker, err = natsauth.NewRevoker(sys.Conn, p.operatorKey); err != nil {
			return fail(err)
		}
	}
	if s.registry, err = subscribers.New(deps, p.streams()); err != nil {
		return fail(err)
	}
	return s, nil
}

func (p *subscriberParams) streams() subscribers.Streams {
	return subscribers.Streams{Raw: p.rawStream, RawPrefix: workers.DefaultSubjectPrefix, Deid: p.deidStream, DeidPrefix: workers.DefaultDeidSubjectPrefix}
}

// noRevoker stands in where a command revokes nothing (create).
type noRevoker struct{}

func (noRevoker) Revoke(context.Context, string, string) error {
	return errors.New("subscriber: revoking needs NATS_SYSTEM_CREDS_FILE")
}

// resolveTenant finds the tenant named by id or slug; unknown is bad input.
func (s *session) resolveTenant(ctx context.Context, arg string) (chartstream.TenantID, error) {
	if id, err := chartstream.ParseTenantID(arg); err == nil {
		if _, err := tenants.NewDirectory(s.admin).Lookup(ctx, id); err != nil {
			return id, refused(err)
		}
		return id, nil
	}
	t, err := s.tenants.BySlug(ctx, arg)
	if err != nil {
		return chartstream.TenantID{}, refused(err)
	}
	return t.ID, nil
}

// onTenant connects as create (or, revoking, as revoke) needs, resolves
// --tenant and runs fn; fn's domain errors about the input are exit 2.
func (p *subscriberParams) onTenant(cmd *cobra.Command, revoking bool, fn func(*session, chartstream.TenantID) error) error {
	s, err := p.open(cmd.Context(), false, revoking)
	if err != nil {
		return err
	}
	defer s.close()
	tenant, err := s.resolveTenant(cmd.Context(), p.tenant)
	if err != nil {
		return err
	}
	return refused(fn(s, tenant))
}
