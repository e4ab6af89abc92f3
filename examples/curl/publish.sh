#!/usr/bin/env bash
# Publish a provider, a dataset and one study to cireg with curl, then read them back.
#   CIREG_URL=http://127.0.0.1:8080 CIREG_TOKEN=<bearer token> CIREG_PROVIDER=<provider> \
#   examples/curl/publish.sh
# Answers: 201 new, 200 a re-send of the same event id, 400/409/422 refused (the problem details
# say what and where), 429/503 wait Retry-After and send the same event again.
set -euo pipefail
url="${CIREG_URL:-http://127.0.0.1:8080}"
provider="$CIREG_PROVIDER"
dataset="${CIREG_DATASET:-example-breast-mri}"
data="$(cd "$(dirname "$0")/../data" && pwd)"
auth="Authorization: Bearer $CIREG_TOKEN"
uuid() { cat /proc/sys/kernel/random/uuid; }
now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

# POSTs one structured-mode event; prints the answer; fails on anything but 200, 201 (and 409
# when $2 is "again-ok": the script may run twice)
post() {
  local answer status
  answer="$(curl -sS -w '\n%{http_code}' -X POST "$url/events" -H "$auth" \
    -H 'Content-Type: application/cloudevents+json' --data-binary @-)"
  status="${answer##*$'\n'}"
  echo "$status ${answer%$'\n'*}"
  case "$status" in
    200|201) ;;
    409) [ "${1:-}" = again-ok ] || exit 1 ;;
    *) exit 1 ;;
  esac
}

post again-ok <<JSON
{"specversion": "1.0", "id": "$(uuid)", "source": "urn:cireg:provider:$provider",
 "type": "eu.cancerimage.provider.registered.v1", "subject": "$provider", "time": "$now",
 "datacontenttype": "application/json", "data": $(cat "$data/provider.json")}
JSON

post again-ok <<JSON
{"specversion": "1.0", "id": "$(uuid)", "source": "urn:cireg:provider:$provider",
 "type": "eu.cancerimage.dataset.published.v1", "subject": "$dataset", "time": "$now",
 "datacontenttype": "application/json", "data": $(cat "$data/dataset.json")}
JSON

study_uid="2.25.$(uuid | tr -d '-' | tr 'a-f' '1-6' | sed 's/^0*//')"
series_uid="$study_uid.1"
post <<JSON
{"specversion": "1.0", "id": "$(uuid)", "source": "urn:cireg:provider:$provider",
 "type": "eu.cancerimage.study.registered.v1", "subject": "EX-$(uuid | cut -c1-8)", "time": "$now",
 "datacontenttype": "application/json",
 "data": {"dataset": "$dataset", "studyInstanceUid": "$study_uid", "started": "2024-05-02T08:15:00Z",
          "description": "MRI breast", "modalities": ["MR"], "numberOfSeries": 1, "numberOfInstances": 80,
          "series": [{"uid": "$series_uid", "number": 1, "modality": "MR",
                      "bodySite": {"code": "76752008", "display": "Breast"}, "numberOfInstances": 80}]}}
JSON

# read back: the dataset (public), the study (bearer token; the provider reads its own studies)
curl -sS --fail-with-body "$url/api/v1/datasets/$provider/$dataset" -o /dev/null
for _ in $(seq 60); do
  bundle="$(curl -sS --fail-with-body -H "$auth" "$url/fhir/ImagingStudy?identifier=$study_uid&_summary=count")"
  case "$bundle" in *'"total":1,'*|*'"total":1}'*|*'"total": 1'*) echo "study $study_uid found in FHIR"; exit 0 ;; esac
  sleep 0.5
done
echo "study $study_uid not found: $bundle" >&2
exit 1
