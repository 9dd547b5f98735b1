#!/usr/bin/env bash
# make run: create the demo tenant, print how to call the API, and run API +
# workers in one process. Expects `make up` to have run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LOCAL=${CS_LOCAL_DIR:-$ROOT/.local}
set -a; . "$LOCAL/env"; set +a
BIN="$LOCAL/bin/chartstream"
# CS_TLS=1: the API speaks HTTPS with the dev CA's certificate.
URL="http://$HTTP_ADDR" CURL="curl -s"
if [ -n "${TLS_CERT_FILE:-}" ]; then URL="https://$HTTP_ADDR" CURL="curl -s --cacert $CS_TLS_CA_FILE"; fi

tenant=$("$BIN" tenant create --slug demo --name "Demo Clinic" --tier standard --if-not-exists)
cat <<MSG

chartstream is starting on $URL
  demo tenant: $tenant
  readiness:   $CURL $URL/readyz
MSG
if "$BIN" token --help >/dev/null 2>&1; then
	token=$("$BIN" token --tenant "$tenant" --role clinician --sub dev-clinician --ttl 12h)
	cat <<MSG
  dev token (clinician, 12h):
    export TOKEN=$token
  example:
    $CURL -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
      -d '{"mrn":"A-1001","name":{"family":"Lovelace","given":["Ada"]},"birth_date":"1990-01-02","sex":"female"}' \\
      $URL/v1/patients
MSG
fi
echo
JWT_ALLOW_DEV_KEY=true exec "$BIN" all
