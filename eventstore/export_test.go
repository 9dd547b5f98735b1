package eventstore

// QueuedAppends reports how many appends wait for a flusher (tests only).
func (s *Store) QueuedAppends() int {
	s.appender.mu.Lock()
	defer s.appender.mu.Unlock()
	return len(s.appender.queue)
}
