package idempotency

import "github.com/redis/go-redis/v9"

// The states of a key's hash.
const (
	statePending = "pending"
	stateDone    = "done"
)

// The scripts are immutable once built (a source and its SHA-1), so they are
// shared package values rather than per-Store state. Each runs atomically in
// Redis, which is what keeps two requests from both owning a key.

// claimScript takes the key if nobody holds it (the SET NX of this design,
// done as HSET after an existence check, since the record is a hash) and
// returns an empty array; otherwise it returns {fp, state, resp} of the
// holder. KEYS[1] key; ARGV[1] fingerprint hash, ARGV[2] in-flight TTL (ms).
var claimScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'fp', 'state', 'resp')
if not cur[1] then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'state', '` + statePending + `')
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {}
end
return cur
`)

// completeScript stores the response unless another fingerprint holds the
// key ("mismatch") or a response is already stored ("done"), and returns
// "ok" when it stored it. KEYS[1] key; ARGV[1] fingerprint hash, ARGV[2]
// response JSON, ARGV[3] TTL (ms).
var completeScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'fp', 'state')
if cur[1] and cur[1] ~= ARGV[1] then return 'mismatch' end
if cur[2] == '` + stateDone + `' then return 'done' end
redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'state', '` + stateDone + `', 'resp', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 'ok'
`)

// abandonScript deletes a pending claim and leaves a completed key alone.
// KEYS[1] key.
var abandonScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') == '` + statePending + `' then
  return redis.call('DEL', KEYS[1])
end
return 0
`)
