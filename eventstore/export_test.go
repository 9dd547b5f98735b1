package eventstore

// QueuedAppends reports how many writes wait for a flusher (tests only).
func (s *Store) QueuedAppends() int { return s.writes.Len() }
