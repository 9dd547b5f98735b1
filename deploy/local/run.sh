#!/usr/bin/env bash
# make run: create the demo tenant, print how to call the API, and run API +
# workers in one process. Expects `make up` to have run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
set -a; . "$ROOT/.local/env"; set +a
BIN="$ROOT/.local/bin/chartstream"

tenant=$("$BIN" tenant create --slug demo --name "Demo Clinic" --tier standard --if-not-exists)
cat <<MSG

chartstream is starting on http://$HTTP_ADDR
  demo tenant: $tenant
  readiness:   curl -s http://$HTTP_ADDR/readyz
MSG
if "$BIN" token --help >/dev/null 2>&1; then
	token=$("$BIN" token --tenant "$tenant" --role clinician --sub dev-clinician --ttl 12h)
	cat <<MSG
  dev token (clinician, 12h):
    export TOKEN=$token
  example:
    curl -s -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
      -d '{"mrn":"A-1001","name":{"family":"Lovelace","given":["Ada"]},"birth_date":"1990-01-02","sex":"female"}' \\
      http://$HTTP_ADDR/v1/patients
MSG
fi
echo
JWT_ALLOW_DEV_KEY=true exec "$BIN" all
