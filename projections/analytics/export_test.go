package analytics

// CensusSQL is the census read, for the test of its cost.
const CensusSQL = censusSQL
