package metrics

// Rank re-ranks the busiest tenants now, as Run does every RankInterval.
func (m *Metrics) Rank() { m.rank() }
