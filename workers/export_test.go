package workers

import "github.com/chartstream/chartstream"

// SetAfterPublish installs the test hook that runs between JetStream's
// acknowledgements of a batch and the checkpoint.
func (r *Relay) SetAfterPublish(fn func(events []chartstream.Event)) { r.afterPublish = fn }
