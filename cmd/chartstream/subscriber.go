package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/messaging"
	"github.com/chartstream/chartstream/internal/subscribers"
	"github.com/chartstream/chartstream/workers"
)

// subscriberParams are the settings of the subscriber commands.
type subscriberParams struct {
	adminURL, natsURL, accountKey, systemCreds, operatorKey string
	rawStream, deidStream                                   string
	nats                                                    messaging.Config
	tenant, name, credsOut                                  string
	deidentified, asJSON                                    bool
}

func newSubscriberCmd() *cobra.Command {
	var p subscriberParams
	cmd := &cobra.Command{
		Use:   "subscriber",
		Short: "Give external consumers NATS credentials for one tenant's stream, list and revoke them",
		Long: `subscriber gives an external consumer (analytics, research, quality reporting)
NATS credentials that can read one tenant's events and nothing else: the raw
clinical stream (PHI sealed), or with --deidentified the de-identified one. Each
subscriber gets a durable JetStream consumer filtered to the tenant's subjects,
and a NATS user that may only pull from it, acknowledge, and receive on its own
inbox prefix. revoke deletes the consumer and revokes the user at once.`,
	}
	pf := cmd.PersistentFlags()
	stringFlag(pf, &p.adminURL, "database-admin-url", "DATABASE_ADMIN_URL", "", "PostgreSQL URL of the owner role")
	stringFlag(pf, &p.natsURL, "nats-url", "NATS_URL", "", "NATS server of the streams")
	natsAuthFlags(pf, &p.nats)
	stringFlag(pf, &p.accountKey, "nats-account-signing-key-file", "NATS_ACCOUNT_SIGNING_KEY_FILE", "", "NKey seed of a signing key of the platform's NATS account (signs subscribers' users)")
	stringFlag(pf, &p.systemCreds, "nats-system-creds-file", "NATS_SYSTEM_CREDS_FILE", "", "NATS system account user's .creds (pushes revocations)")
	stringFlag(pf, &p.operatorKey, "nats-operator-signing-key-file", "NATS_OPERATOR_SIGNING_KEY_FILE", "", "NKey seed of an operator signing key (signs the account JWT with its revocations)")
	stringFlag(pf, &p.rawStream, "relay-stream", "RELAY_STREAM", workers.DefaultStream, "the clinical stream")
	stringFlag(pf, &p.deidStream, "deid-stream", "DEID_STREAM", workers.DefaultDeidStream, "the de-identified stream")
	pf.StringVar(&p.tenant, "tenant", "", "tenant id or slug")

	create := &cobra.Command{
		Use:   "create --tenant T --name N [--deidentified] [--creds-out FILE]",
		Short: "Issue credentials for the tenant's stream; writes a .creds file",
		Args:  badInput(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return p.create(cmd) },
	}
	create.Flags().StringVar(&p.name, "name", "", "the subscriber's name within the tenant: lowercase letters, digits, - and _")
	create.Flags().BoolVar(&p.deidentified, "deidentified", false, "the de-identified stream (CLINICAL_DEID) instead of the raw one")
	create.Flags().StringVar(&p.credsOut, "creds-out", "", "where to write the credentials (default NAME.creds; never overwritten)")
	create.Flags().BoolVar(&p.asJSON, "json", false, "print JSON")

	list := &cobra.Command{
		Use:   "list [--tenant T] [--json]",
		Short: "List subscribers, revoked ones too (every tenant's without --tenant)",
		Args:  badInput(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return p.list(cmd) },
	}
	list.Flags().BoolVar(&p.asJSON, "json", false, "print JSON")

	revoke := &cobra.Command{
		Use:   "revoke --tenant T --name N",
		Short: "Revoke a subscriber: its consumer is deleted and its NATS user revoked",
		Args:  badInput(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return p.revoke(cmd) },
	}
	revoke.Flags().StringVar(&p.name, "name", "", "the subscriber's name")
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// refused makes a domain error about the input bad input (exit 2):
// invalid, unknown or taken.
func refused(err error) error {
	switch chartstream.ErrorCode(err) {
	case chartstream.EINVALID, chartstream.ENOTFOUND, chartstream.ECONFLICT:
		return exitError{2, describe(err)}
	}
	return err
}

// checkInput refuses missing or malformed flags before anything connects.
func (p *subscriberParams) checkInput(needName bool) error {
	if p.tenant == "" {
		return exitError{2, errors.New("--tenant is required")}
	}
	if needName {
		if p.name == "" {
			return exitError{2, errors.New("--name is required")}
		}
		if err := subscribers.ValidateName(p.name); err != nil {
			return exitError{2, errors.New("--name must be 1-63 lowercase letters, digits, dashes or underscores, starting with a letter or digit")}
		}
	}
	return nil
}

func (p *subscriberParams) create(cmd *cobra.Command) error {
	if err := p.checkInput(true); err != nil {
		return err
	}
	out := p.credsOut
	if out == "" {
		out = p.name + ".creds"
	}
	if _, err := os.Stat(out); err == nil {
		return exitError{2, fmt.Errorf("%s exists; credentials are never overwritten (pass --creds-out)", out)}
	}
	var sub subscribers.Subscriber
	var creds []byte
	err := p.onTenant(cmd, false, func(s *session, tenant chartstream.TenantID) (err error) {
		sub, creds, err = s.registry.Create(cmd.Context(), tenant, p.name, p.deidentified)
		return err
	})
	if err != nil {
		return err
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, err = f.Write(creds)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("subscriber %s was created but its credentials could not be written (revoke it and create it again): %w", sub.Name, err)
	}
	if p.asJSON {
		return json.NewEncoder(cmd.OutOrStdout()).Encode(struct {
			subscribers.Subscriber
			CredsFile string `json:"creds_file"`
		}{sub, out})
	}
	fmt.Fprintf(cmd.OutOrStdout(), "subscriber %s of tenant %s: stream %s, consumer %s, inbox prefix %s; credentials in %s\n",
		sub.Name, sub.Tenant, sub.Stream, sub.Consumer, sub.InboxPrefix, out)
	return nil
}

func (p *subscriberParams) list(cmd *cobra.Command) error {
	s, err := p.open(cmd.Context(), true, false)
	if err != nil {
		return err
	}
	defer s.close()
	var scope []chartstream.TenantID
	if p.tenant != "" {
		t, err := s.resolveTenant(cmd.Context(), p.tenant)
		if err != nil {
			return err
		}
		scope = append(scope, t)
	} else {
		all, err := s.tenants.List(cmd.Context())
		if err != nil {
			return err
		}
		for _, t := range all {
			scope = append(scope, t.ID)
		}
	}
	var subs []subscribers.Subscriber
	for _, t := range scope {
		got, err := subscribers.List(cmd.Context(), s.admin, p.streams(), t)
		if err != nil {
			return err
		}
		subs = append(subs, got...)
	}
	if p.asJSON {
		if subs == nil {
			subs = []subscribers.Subscriber{}
		}
		return json.NewEncoder(cmd.OutOrStdout()).Encode(subs)
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TENANT\tNAME\tSTREAM\tCONSUMER\tCREATED\tREVOKED")
	for _, sub := range subs {
		revoked := "-"
		if sub.RevokedAt != nil {
			revoked = sub.RevokedAt.UTC().Format("2006-01-02T15:04:05Z")
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", sub.Tenant, sub.Name, sub.Stream, sub.Consumer, sub.CreatedAt.UTC().Format("2006-01-02T15:04:05Z"), revoked)
	}
	return w.Flush()
}

func (p *subscriberParams) revoke(cmd *cobra.Command) error {
	if err := p.checkInput(true); err != nil {
		return err
	}
	var sub subscribers.Subscriber
	err := p.onTenant(cmd, true, func(s *session, tenant chartstream.TenantID) (err error) {
		sub, err = s.registry.Revoke(cmd.Context(), tenant, p.name)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "subscriber %s of tenant %s revoked: consumer %s deleted, NATS user %s revoked\n", sub.Name, sub.Tenant, sub.Consumer, sub.UserKey)
	return nil
}
