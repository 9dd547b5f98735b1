package workers

// SetAfterPublish installs the test hook that runs between JetStream's
// acknowledgements and the checkpoint.
func (r *Relay) SetAfterPublish(fn func()) { r.afterPublish = fn }
