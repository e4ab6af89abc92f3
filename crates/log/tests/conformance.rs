//! One conformance suite, run against both backends: they must behave the same.
#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use cireg_log::{AppendRequest, Appended, EmbeddedLog, EventLog, JetStreamLog, JetStreamOptions, LogError};
use cireg_testkit::NatsServer;

fn req(subject: &str, id: &str, expected: u64) -> AppendRequest {
    AppendRequest {
        subject: subject.to_owned(),
        event_id: id.to_owned(),
        payload: Bytes::from(format!("{{\"id\":\"{id}\"}}")),
        expected_last_subject_seq: expected,
    }
}

const A: &str = "cireg.events.p1.dataset.a";
const B: &str = "cireg.events.p1.dataset.b";

async fn conformance(log: Arc<dyn EventLog>) {
    assert_eq!(log.last_seq().await.unwrap(), 0);
    assert_eq!(log.last_seq_of_subject(A).await.unwrap(), 0);

    // append, in order
    assert_eq!(log.append(req(A, "e1", 0)).await.unwrap(), Appended::New(1));
    assert_eq!(log.append(req(B, "e2", 0)).await.unwrap(), Appended::New(2));
    assert_eq!(log.append(req(A, "e3", 1)).await.unwrap(), Appended::New(3));
    assert_eq!(log.last_seq().await.unwrap(), 3);
    assert_eq!(log.last_seq_of_subject(A).await.unwrap(), 3);

    // a re-sent id answers with the original sequence and appends nothing
    assert_eq!(log.append(req(A, "e1", 3)).await.unwrap(), Appended::Duplicate(1));
    assert_eq!(log.last_seq().await.unwrap(), 3);

    // optimistic concurrency: a stale expectation is a conflict, never an overwrite
    let err = log.append(req(A, "e4", 1)).await.unwrap_err();
    assert!(matches!(err, LogError::Conflict { .. }), "{err}");
    let err = log.append(req(B, "e5", 0)).await.unwrap_err();
    assert!(matches!(err, LogError::Conflict { .. }), "expected-empty on a used subject: {err}");
    assert_eq!(log.last_seq().await.unwrap(), 3);

    // two writers race on one subject: exactly one wins
    let (x, y) = tokio::join!(log.append(req(B, "race-x", 2)), log.append(req(B, "race-y", 2)));
    let wins = [&x, &y].iter().filter(|r| matches!(r, Ok(Appended::New(_)))).count();
    let conflicts = [&x, &y].iter().filter(|r| matches!(r, Err(LogError::Conflict { .. }))).count();
    assert_eq!((wins, conflicts), (1, 1), "{x:?} {y:?}");

    // read back one subject in order
    let a: Vec<u64> = log.read_subject(A).await.unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(a, vec![1, 3]);
    let b = log.read_subject(B).await.unwrap();
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].subject, B);
    assert_eq!(b[0].payload, Bytes::from_static(b"{\"id\":\"e2\"}"));
    assert!(b[0].appended_at_nanos > 0);

    // follow from the start: everything in one batch when behind
    let mut f = log.follow(1, "conformance-reader").await.unwrap();
    let batch = f.next_batch(100, Duration::from_secs(5)).await.unwrap();
    assert_eq!(batch.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    f.confirm().await.unwrap();
    // live: nothing more yet, then one new event
    assert!(f.next_batch(100, Duration::from_millis(300)).await.unwrap().is_empty());
    log.append(req(A, "e6", 3)).await.unwrap();
    let batch = f.next_batch(100, Duration::from_secs(5)).await.unwrap();
    assert_eq!(batch.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![5]);
    drop(f);

    // follow from the middle
    let mut f = log.follow(3, "conformance-reader").await.unwrap();
    let batch = f.next_batch(2, Duration::from_secs(5)).await.unwrap();
    assert_eq!(batch.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
    drop(f);

    // pages of the whole log
    let seqs = |v: Vec<cireg_log::StoredEvent>| v.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(log.read_range(1, 100).await.unwrap()), vec![1, 2, 3, 4, 5]);
    assert_eq!(seqs(log.read_range(2, 2).await.unwrap()), vec![2, 3]);
    assert_eq!(seqs(log.read_range(5, 10).await.unwrap()), vec![5]);
    assert!(log.read_range(6, 10).await.unwrap().is_empty());
    assert_eq!(log.read_range(0, 1).await.unwrap()[0].subject, A);

    // erasure: a purged subject is gone from every read
    assert_eq!(log.purge_subject(A).await.unwrap(), 3);
    assert!(log.read_subject(A).await.unwrap().is_empty());
    assert_eq!(log.last_seq_of_subject(A).await.unwrap(), 0);
    let mut f = log.follow(1, "conformance-reader").await.unwrap();
    let batch = f.next_batch(100, Duration::from_secs(5)).await.unwrap();
    assert!(batch.iter().all(|e| e.subject == B), "{batch:?}");
    assert_eq!(batch.len(), 2);
    assert_eq!(seqs(log.read_range(1, 100).await.unwrap()), vec![2, 4]);

    // erasure under a prefix: every subject below it, nothing beside it
    let s1 = ["cireg.events.p1.subject.s1.study.x", "cireg.events.p1.subject.s1.study.y"];
    let s10 = "cireg.events.p1.subject.s10.study.z";
    for (i, subject) in s1.iter().chain([&s10]).enumerate() {
        log.append(req(subject, &format!("p{i}"), 0)).await.unwrap();
    }
    assert_eq!(log.purge_subject("cireg.events.p1.subject.s1.>").await.unwrap(), 2);
    for subject in s1 {
        assert!(log.read_subject(subject).await.unwrap().is_empty(), "{subject}");
    }
    assert_eq!(log.read_subject(s10).await.unwrap().len(), 1);
    assert_eq!(log.read_subject(B).await.unwrap().len(), 2);

    concurrent_appends(log).await;
}

/// Many appends at once (the embedded log commits them in groups): every one is answered, new
/// events get distinct sequences, the log holds exactly those, and of several writers racing on
/// one subject with the same expectation exactly one wins.
async fn concurrent_appends(log: Arc<dyn EventLog>) {
    let before = log.last_seq().await.unwrap();
    let distinct: Vec<_> = (0..200)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(
                async move { log.append(req(&format!("cireg.events.p2.dataset.c{i}"), &format!("c{i}"), 0)).await },
            )
        })
        .collect();
    let race: Vec<_> = (0..8)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.append(req("cireg.events.p2.dataset.race", &format!("r{i}"), 0)).await })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in distinct {
        match task.await.unwrap().unwrap() {
            Appended::New(seq) => seqs.push(seq),
            other => panic!("a new event answered {other:?}"),
        }
    }
    let (mut won, mut lost) = (0, 0);
    for task in race {
        match task.await.unwrap() {
            Ok(Appended::New(seq)) => {
                won += 1;
                seqs.push(seq);
            }
            Err(LogError::Conflict { .. }) => lost += 1,
            other => panic!("a racing append answered {other:?}"),
        }
    }
    assert_eq!((won, lost), (1, 7));
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 201, "sequences given twice");
    let stored = log.read_range(before + 1, 1000).await.unwrap();
    let mut stored_seqs: Vec<u64> = stored.iter().map(|e| e.seq).collect();
    stored_seqs.sort_unstable();
    assert_eq!(stored_seqs, seqs, "the log holds exactly the acknowledged events");
    assert_eq!(log.read_subject("cireg.events.p2.dataset.race").await.unwrap().len(), 1);
}

#[tokio::test]
async fn embedded_log_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(&dir.path().join("log.redb")).unwrap();
    conformance(Arc::new(log)).await;
}

#[tokio::test]
async fn jetstream_log_conforms() {
    let server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.unwrap();
    let log = JetStreamLog::open(client, &JetStreamOptions::default()).await.unwrap();
    conformance(Arc::new(log)).await;
}

#[tokio::test]
async fn embedded_log_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.redb");
    {
        let log = EmbeddedLog::open(&path).unwrap();
        log.append(req(A, "e1", 0)).await.unwrap();
    }
    let log = EmbeddedLog::open(&path).unwrap();
    assert_eq!(log.last_seq().await.unwrap(), 1);
    assert_eq!(log.append(req(A, "e1", 1)).await.unwrap(), Appended::Duplicate(1));
}

#[tokio::test]
async fn jetstream_log_survives_server_restart() {
    let mut server = NatsServer::start();
    {
        let client = async_nats::connect(server.url()).await.unwrap();
        let log = JetStreamLog::open(client, &JetStreamOptions::default()).await.unwrap();
        log.append(req(A, "e1", 0)).await.unwrap();
    }
    server.restart();
    let client = async_nats::connect(server.url()).await.unwrap();
    let log = JetStreamLog::open(client, &JetStreamOptions::default()).await.unwrap();
    assert_eq!(log.last_seq().await.unwrap(), 1);
    assert_eq!(log.read_subject(A).await.unwrap().len(), 1);
}

#[tokio::test]
async fn embedded_log_backs_up_while_appends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log.redb")).unwrap());
    let event = |i: u64| req(&format!("{B}.{i}"), &format!("b{i}"), 0);
    // more rows than one copy transaction takes (appended at once: group commits)
    for appended in futures::future::join_all((0..60_000).map(|i| log.append(event(i)))).await {
        appended.unwrap();
    }
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            for from in (60_000..64_000).step_by(200) {
                for appended in futures::future::join_all((from..from + 200).map(|i| log.append(event(i)))).await {
                    appended.unwrap();
                }
            }
        })
    };
    let to = dir.path().join("backup.redb");
    let last = log.backup(&to).await.unwrap().unwrap();
    writer.await.unwrap();
    assert!((60_000..=64_000).contains(&last), "{last}");
    assert!(log.backup(&to).await.is_err(), "a backup never overwrites a file");
    let original = log.read_range(1, 64_000).await.unwrap();
    let copy = EmbeddedLog::open(&to).unwrap();
    assert_eq!(copy.last_seq().await.unwrap(), last);
    let copied = copy.read_range(1, 64_000).await.unwrap();
    assert_eq!(copied.as_slice(), &original[..last as usize], "the copy is the log up to its last event");
    // a working log: its subjects, its event ids (a re-send is recognised), its next sequence
    let seventh = copy.read_subject(&format!("{B}.7")).await.unwrap();
    assert_eq!(seventh.len(), 1);
    assert_eq!(copy.append(event(7)).await.unwrap(), Appended::Duplicate(seventh[0].seq));
    assert_eq!(copy.append(req(A, "after", 0)).await.unwrap(), Appended::New(last + 1));
}
