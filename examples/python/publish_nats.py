"""Publish a provider, a dataset and its studies to cireg over NATS, then read them back over HTTP.

    pip install nats-py==2.16.0 requests==2.34.2
    CIREG_NATS=nats://127.0.0.1:4222 CIREG_NATS_USER=<provider> CIREG_NATS_PASSWORD=... \
    CIREG_PROVIDER=<provider> CIREG_URL=http://127.0.0.1:8080 CIREG_TOKEN=<bearer token> \
    python publish_nats.py

Two ways in (the README's "Publishing"):
- at once: a request to `cireg.ingest.<provider>`; the reply is the outcome (the accepted event,
  or RFC 9457 problem details with the same fields as over HTTP).
- durable: a JetStream publish to `cireg.submit.<provider>.<event-id>` with `Nats-Msg-Id` = the
  event id. The submission is kept while cireg is down; its outcome is published on
  `cireg.outcome.<provider>.<event-id>`. Subscribe before you submit.
Replies come under `_INBOX.<provider>`: the deployed NATS configuration lets a provider's user
receive nothing else.
"""

import asyncio
import json
import os
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import nats
import requests

NATS_URL = os.environ.get("CIREG_NATS", "nats://127.0.0.1:4222")
PROVIDER = os.environ["CIREG_PROVIDER"]
DATASET = os.environ.get("CIREG_DATASET", "example-breast-mri")
STUDIES = int(os.environ.get("CIREG_STUDIES", "5"))
URL = os.environ.get("CIREG_URL", "http://127.0.0.1:8080").rstrip("/")
DATA = Path(__file__).resolve().parent.parent / "data"


def event(type_, subject, data):
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


def study():
    uid = lambda: f"2.25.{uuid.uuid4().int}"  # noqa: E731
    series = [
        {
            "uid": uid(),
            "number": 1,
            "modality": "MR",
            "bodySite": {"code": "76752008", "display": "Breast"},
            "laterality": {"code": "51440002", "display": "Right and left"},
            "numberOfInstances": 176,
            "description": "Ax T1 pre-contrast",
        }
    ]
    return {
        "dataset": DATASET,
        "studyInstanceUid": uid(),
        "started": "2024-03-14T09:42:00+01:00",
        "description": "MRI breast bilateral",
        "modalities": ["MR"],
        "numberOfSeries": 1,
        "numberOfInstances": 176,
        "series": series,
    }


def accepted(outcome, already_ok=False):
    """True for an accepted event; a refusal is printed with every field it names."""
    if "sequence" in outcome:
        return True
    if outcome.get("status") == 409 and already_ok:
        return True
    print(f"refused: {outcome.get('status')} {outcome.get('title')}: {outcome.get('detail')}", file=sys.stderr)
    for error in outcome.get("errors", []):
        print(f"  {error['pointer']}: {error['detail']}", file=sys.stderr)
    return False


async def main():
    options = {"inbox_prefix": f"_INBOX.{PROVIDER}"}
    if os.environ.get("CIREG_NATS_USER"):
        options.update(user=os.environ["CIREG_NATS_USER"], password=os.environ.get("CIREG_NATS_PASSWORD", ""))
    nc = await nats.connect(NATS_URL, **options)

    # at once: request/reply (409 when this script ran before: the provider and dataset exist)
    for ev in [
        event("eu.cancerimage.provider.registered.v1", PROVIDER, json.loads((DATA / "provider.json").read_text())),
        event("eu.cancerimage.dataset.published.v1", DATASET, json.loads((DATA / "dataset.json").read_text())),
    ]:
        reply = await nc.request(f"cireg.ingest.{PROVIDER}", json.dumps(ev).encode(), timeout=30)
        outcome = json.loads(reply.data)
        if not accepted(outcome, already_ok=True):
            raise SystemExit(f"{ev['type']} refused")
        print(f"{ev['type']}: {outcome.get('sequence', 'already there')}")

    # durable: submissions on JetStream, outcomes heard on the provider's outcome subjects
    studies = [event("eu.cancerimage.study.registered.v1", f"EX-{uuid.uuid4().hex[:10]}", study()) for _ in range(STUDIES)]
    outcomes = {}
    done = asyncio.Event()

    async def heard(msg):
        outcomes[msg.subject.rsplit(".", 1)[-1]] = json.loads(msg.data)
        if len(outcomes) == len(studies):
            done.set()

    sub = await nc.subscribe(f"cireg.outcome.{PROVIDER}.>", cb=heard)
    js = nc.jetstream()
    for ev in studies:
        # the ack says the submission is kept; the outcome says what the registry made of it
        await js.publish(f"cireg.submit.{PROVIDER}.{ev['id']}", json.dumps(ev).encode(), headers={"Nats-Msg-Id": ev["id"]})
    await asyncio.wait_for(done.wait(), timeout=60)
    await sub.unsubscribe()
    await nc.drain()
    if not all(accepted(outcomes[ev["id"]]) for ev in studies):
        raise SystemExit("some studies were refused")
    print(f"{len(studies)} studies registered through the submission stream")

    # read back over HTTP with the provider's bearer token
    if not os.environ.get("CIREG_TOKEN"):
        return
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {os.environ['CIREG_TOKEN']}"
    deadline = time.time() + 30
    for ev in studies:
        uid = ev["data"]["studyInstanceUid"]
        while True:
            bundle = session.get(f"{URL}/fhir/ImagingStudy", params={"identifier": uid}, timeout=30).json()
            if bundle.get("total") == 1:
                break
            if time.time() > deadline:
                raise SystemExit(f"study {uid} not found: {bundle}")
            time.sleep(0.5)
    print(f"every study found in FHIR ({len(studies)})")


if __name__ == "__main__":
    asyncio.run(main())
