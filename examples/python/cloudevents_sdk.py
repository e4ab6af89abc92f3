"""Events made with the official CloudEvents Python SDK, sent to cireg in each HTTP content mode.

    pip install cloudevents==2.2.0 requests==2.34.2
    CIREG_URL=http://127.0.0.1:8080 CIREG_TOKEN=<bearer token> CIREG_PROVIDER=<provider> \
    python cloudevents_sdk.py

Structured mode (`application/cloudevents+json`), a batch (`application/cloudevents-batch+json`:
a JSON array of structured events) and binary mode (`ce-*` headers, the data as the body) are
all accepted; the provider is registered in structured mode, its dataset in binary mode, and two
studies in a batch.
"""

import json
import os
import sys
import uuid
from pathlib import Path

import requests
from cloudevents.core.bindings.http import to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

URL = os.environ.get("CIREG_URL", "http://127.0.0.1:8080").rstrip("/")
PROVIDER = os.environ["CIREG_PROVIDER"]
DATASET = os.environ.get("CIREG_DATASET", "example-breast-mri")
DATA = Path(__file__).resolve().parent.parent / "data"
FORMAT = JSONFormat()

session = requests.Session()
session.headers["Authorization"] = f"Bearer {os.environ['CIREG_TOKEN']}"


def event(type_, subject, data):
    # the SDK fills in specversion, a UUID id and the time
    return CloudEvent(
        attributes={
            "type": type_,
            "source": f"urn:cireg:provider:{PROVIDER}",
            "subject": subject,
            "datacontenttype": "application/json",
        },
        data=data,
    )


def send(headers, body, what):
    r = session.post(f"{URL}/events", data=body, headers=headers, timeout=60)
    print(f"{what}: {r.status_code} {r.text[:300]}")
    if r.status_code not in (200, 201):
        sys.exit(f"{what} refused")
    return r.json()


def study():
    uid = lambda: f"2.25.{uuid.uuid4().int}"  # noqa: E731
    return {
        "dataset": DATASET,
        "studyInstanceUid": uid(),
        "started": "2023-11-02T10:00:00Z",
        "description": "MRI breast",
        "modalities": ["MR"],
        "numberOfSeries": 1,
        "numberOfInstances": 90,
        "series": [
            {
                "uid": uid(),
                "number": 1,
                "modality": "MR",
                "bodySite": {"code": "76752008", "display": "Breast"},
                "numberOfInstances": 90,
            }
        ],
    }


def main():
    provider = event("eu.cancerimage.provider.registered.v1", PROVIDER, json.loads((DATA / "provider.json").read_text()))
    message = to_structured(provider, FORMAT)
    send(message.headers, message.body, "structured mode")

    dataset = event("eu.cancerimage.dataset.published.v1", DATASET, json.loads((DATA / "dataset.json").read_text()))
    message = to_binary(dataset, FORMAT)
    assert "ce-specversion" in message.headers
    send(message.headers, message.body, "binary mode")

    studies = [event("eu.cancerimage.study.registered.v1", f"EX-{uuid.uuid4().hex[:10]}", study()) for _ in range(2)]
    batch = b"[" + b",".join(FORMAT.write(e) for e in studies) + b"]"
    outcomes = send({"Content-Type": "application/cloudevents-batch+json"}, batch, "batch")["results"]
    assert [o["id"] for o in outcomes] == [e.get_id() for e in studies], outcomes


if __name__ == "__main__":
    main()
