//! Study events are decided on the aggregates this process last saw and appended with the
//! subject sequence those imply. Two ingesters over one real log (each with its own cache, as two
//! processes would be) show that a stale cache never lets a wrong decision through: the log's
//! sequence check catches it, and the event is decided again on what the log holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use cireg_ingest::{Ingest, IngestError, Sender};
use cireg_log::{EmbeddedLog, EventLog};
use cireg_model::Rejection;
use serde_json::{json, Value};

fn example(name: &str) -> Value {
    let path = format!("{}/../../schemas/examples/eu.cancerimage.{name}.v1.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn update(id: &str, description: &str) -> Value {
    let mut e = example("study.updated");
    e["id"] = json!(id);
    e["data"]["description"] = json!(description);
    e.as_object_mut().unwrap().remove("expectedversion");
    e
}

fn is_conflict(r: &Result<cireg_ingest::Accepted, IngestError>) -> bool {
    matches!(r, Err(IngestError::Rejected { rejection: Rejection::Conflict { .. }, .. }))
}

/// Two ingesters over one embedded log (two nodes, each with its own cache), and a provider,
/// dataset and study registered through the first.
async fn two_ingesters_with_a_study() -> (tempfile::TempDir, Arc<dyn EventLog>, Ingest, Ingest) {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(&dir.path().join("log.redb")).unwrap());
    let (a, b) = (Ingest::new(log.clone()), Ingest::new(log.clone()));
    for name in ["provider.registered", "dataset.published", "study.registered"] {
        a.submit(&bytes(&example(name)), &Sender::Operator).await.unwrap();
    }
    (dir, log, a, b)
}

#[tokio::test]
async fn a_stale_cache_never_decides_a_study_event() {
    let (_dir, log, a, b) = two_ingesters_with_a_study().await;
    let op = Sender::Operator;
    let registered = example("study.registered");
    let subject = cireg_model::validate_event(&bytes(&registered)).unwrap().subject();

    // b changes the study; a still holds it as registered
    let by_b = b.submit(&bytes(&update("by-b", "changed by b")), &op).await.unwrap();
    // a's change, decided on its stale copy, is refused by the log, then decided again on the
    // log's: it lands after b's
    let by_a = a.submit(&bytes(&update("by-a", "changed by a")), &op).await.unwrap();
    assert!(!by_a.duplicate && by_a.sequence > by_b.sequence);
    let events = log.read_subject(&subject).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, by_b.sequence, by_a.sequence]);

    // a change that names the version it was based on still conflicts when another landed first
    let mut stale = example("study.updated");
    stale["id"] = json!("based-on-version-1");
    assert!(is_conflict(&b.submit(&bytes(&stale), &op).await), "expected version 1 of a study at version 3");

    // a study registered by b is not new to a, though a's cache does not know it
    let mut other = example("study.registered");
    other["id"] = json!("registered-by-b");
    other["data"]["studyInstanceUid"] = json!("2.25.42");
    b.submit(&bytes(&other), &op).await.unwrap();
    other["id"] = json!("registered-again-by-a");
    assert!(is_conflict(&a.submit(&bytes(&other), &op).await), "a second registration of one study");

    // re-sending an event is recognised, and reusing its id for something else is refused
    let again = a.submit(&bytes(&registered), &op).await.unwrap();
    assert!(again.duplicate && again.sequence == 3);
    let again = b.submit(&bytes(&update("by-a", "changed by a")), &op).await.unwrap();
    assert!(again.duplicate && again.sequence == by_a.sequence);
    assert!(is_conflict(&b.submit(&bytes(&update("by-a", "something else")), &op).await), "an id reused");
    assert_eq!(log.last_seq().await.unwrap(), 6, "nothing else was appended");
}

#[tokio::test]
async fn a_study_of_a_subject_who_withdrew_is_refused_or_erased() {
    let (_dir, log, a, b) = two_ingesters_with_a_study().await;
    let op = Sender::Operator;
    // the subject withdraws through b; a has the subject's consent cached as given
    b.submit(&bytes(&example("subject.consent.withdrawn")), &op).await.unwrap();
    let mut late = example("study.registered");
    late["id"] = json!("after-the-withdrawal");
    late["data"]["studyInstanceUid"] = json!("2.25.43");
    let subject = cireg_model::validate_event(&bytes(&late)).unwrap().subject();
    // whatever a answered, the study is not in the log afterwards
    let _ = a.submit(&bytes(&late), &op).await;
    assert!(log.read_subject(&subject).await.unwrap().is_empty(), "a study of a subject who withdrew stayed");
    // and once a has read the withdrawal, it refuses such a study outright
    late["id"] = json!("after-the-withdrawal-2");
    late["data"]["studyInstanceUid"] = json!("2.25.44");
    assert!(matches!(a.submit(&bytes(&late), &op).await, Err(IngestError::Rejected { .. })));
}
