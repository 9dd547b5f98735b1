package postgres

// For the tests of RDS IAM authentication, which cannot reach RDS.
var (
	TakeAuth = takeAuth
	TokensOf = tokensOf
)
