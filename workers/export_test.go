package workers

import (
	"github.com/nats-io/nats.go"

	"github.com/chartstream/chartstream"
)

// SetAfterPublish installs the test hook that runs between JetStream's
// acknowledgements of a batch and the checkpoint.
func (r *Relay) SetAfterPublish(fn func(events []chartstream.Event)) { r.afterPublish = fn }

// SetPrevious records the tenant's previous event on a message, as the
// relay does.
var SetPrevious = setPrevious

// TenantLockKey is the advisory lock a rebuild holds to pause a tenant's
// projection.
var TenantLockKey = tenantLockKey

// WhilePaused sets the hook a rebuild runs while the tenant's live
// projection is paused.
func WhilePaused(d CopyDeps, fn func()) CopyDeps {
	d.whilePaused = fn
	return d
}

// Sign signs a message as the relay does.
func Sign(m *nats.Msg, s Signer) {
	m.Header.Set(HeaderSignature, s.Sign(signedContent(m.Header, m.Data)))
}

// DeidCheckpointBucket is the key-value bucket of de-identifier checkpoints.
const DeidCheckpointBucket = deidCheckpointBucket
