"""Publish a provider, a dataset and its studies to cireg over HTTP, then read them back.

    pip install requests==2.34.2
    CIREG_URL=http://127.0.0.1:8080 CIREG_TOKEN=<the provider's bearer token> \
    CIREG_PROVIDER=<the provider id the token names> python publish_http.py

One event alone (`application/cloudevents+json`), then the studies as one batch
(`application/cloudevents-batch+json`). What the registry answers, and what to do:

    201 new, 200 a re-send (same id) of an event it already has: done
    400 invalid: the problem's `errors` name each field (a JSON pointer); fix the event
    409 the event does not fit where its aggregate stands (e.g. the dataset exists already)
    422 the dataset breaks the application profile: `shaclResults` say which constraint
    429 over your rate, 503 the log is unavailable: wait `Retry-After` seconds, send the SAME event
        again (same id: a re-send is never applied twice)
"""

import json
import os
import random
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import requests

URL = os.environ.get("CIREG_URL", "http://127.0.0.1:8080").rstrip("/")
TOKEN = os.environ["CIREG_TOKEN"]
PROVIDER = os.environ["CIREG_PROVIDER"]
DATASET = os.environ.get("CIREG_DATASET", "example-breast-mri")
STUDIES = int(os.environ.get("CIREG_STUDIES", "5"))
DATA = Path(__file__).resolve().parent.parent / "data"

session = requests.Session()
session.headers["Authorization"] = f"Bearer {TOKEN}"


def event(type_, subject, data):
    """A CloudEvent in structured mode: a new id every time you mean a new event."""
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"urn:cireg:provider:{PROVIDER}",
        "type": type_,
        "subject": subject,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "datacontenttype": "application/json",
        "data": data,
    }


def post(body, content_type, attempts=8):
    """POSTs to /events, waiting and sending the same body again on 429 and 503."""
    for attempt in range(attempts):
        r = session.post(f"{URL}/events", data=json.dumps(body), headers={"Content-Type": content_type}, timeout=60)
        if r.status_code in (429, 503):
            wait = float(r.headers.get("Retry-After", 2 ** attempt))
            print(f"  {r.status_code}: waiting {wait:.0f} s, then the same again", file=sys.stderr)
            time.sleep(wait)
            continue
        return r
    raise SystemExit(f"gave up after {attempts} attempts: {r.status_code} {r.text}")


def publish(body, already_ok=False):
    r = post(body, "application/cloudevents+json")
    if r.status_code in (200, 201):
        print(f"{body['type']} {body['subject']}: sequence {r.json()['sequence']}")
        return
    problem = r.json()
    if r.status_code == 409 and already_ok:
        print(f"{body['type']} {body['subject']}: already done ({problem.get('detail')})")
        return
    for error in problem.get("errors", []):
        print(f"  {error['pointer']}: {error['detail']}", file=sys.stderr)
    for result in problem.get("shaclResults", []):
        print(f"  {result.get('pointer')}: {result.get('message')}", file=sys.stderr)
    raise SystemExit(f"{body['type']} refused: {r.status_code} {problem.get('title')}: {problem.get('detail')}")


def uid():
    """A DICOM UID under 2.25 (a UUID as a decimal number)."""
    return f"2.25.{uuid.uuid4().int}"


def study():
    series = [
        {
            "uid": uid(),
            "number": n,
            "modality": "MR",
            "bodySite": {"code": "76752008", "display": "Breast"},
            "laterality": {"code": "51440002", "display": "Right and left"},
            "numberOfInstances": 120,
            "description": description,
        }
        for n, description in [(1, "Ax T1 pre-contrast"), (2, "Ax DCE dynamic")]
    ]
    return {
        "dataset": DATASET,
        "studyInstanceUid": uid(),
        "started": f"2024-0{random.randint(1, 9)}-1{random.randint(0, 9)}T09:30:00+01:00",
        "description": "MRI breast bilateral with and without contrast",
        "modalities": ["MR"],
        "numberOfSeries": len(series),
        "numberOfInstances": sum(s["numberOfInstances"] for s in series),
        "series": series,
    }


def main():
    provider = json.loads((DATA / "provider.json").read_text())
    dataset = json.loads((DATA / "dataset.json").read_text())
    # registering and publishing again answer 409: this script may run more than once
    publish(event("eu.cancerimage.provider.registered.v1", PROVIDER, provider), already_ok=True)
    publish(event("eu.cancerimage.dataset.published.v1", DATASET, dataset), already_ok=True)

    # the studies as one batch; the subject is your pseudonym of the person, never a name
    studies = [event("eu.cancerimage.study.registered.v1", f"EX-{uuid.uuid4().hex[:10]}", study()) for _ in range(STUDIES)]
    r = post(studies, "application/cloudevents-batch+json")
    if r.status_code == 207:
        # each event's outcome, in the batch's order: send the refused ones again once fixed
        for sent, outcome in zip(studies, r.json()["results"]):
            if outcome.get("status", 201) >= 300:
                print(f"  {sent['subject']}: {outcome}", file=sys.stderr)
        raise SystemExit("some studies were refused")
    if r.status_code != 200:
        raise SystemExit(f"batch refused: {r.status_code} {r.text}")
    print(f"{len(studies)} studies registered")

    # read back: the dataset in the search API, each study in FHIR (the provider reads its own);
    # the views follow the log within moments, so a read may wait a little
    r = session.get(f"{URL}/api/v1/datasets/{PROVIDER}/{DATASET}", timeout=30)
    r.raise_for_status()
    print(f"dataset {r.json()['iri']}")
    deadline = time.time() + 30
    for sent in studies:
        uid_ = sent["data"]["studyInstanceUid"]
        while True:
            r = session.get(f"{URL}/fhir/ImagingStudy", params={"identifier": f"urn:dicom:uid|urn:oid:{uid_}"}, timeout=30)
            r.raise_for_status()
            if r.json().get("total") == 1:
                break
            if time.time() > deadline:
                raise SystemExit(f"study {uid_} not found: {r.json()}")
            time.sleep(0.5)
    print(f"every study found in FHIR ({len(studies)})")


if __name__ == "__main__":
    main()
