//! The fault campaign (`scripts/faults.sh`, not part of the test command: it runs for minutes).
//! A mixed workload (datasets, updates, studies, consent withdrawals; over HTTP, and over NATS
//! requests with the JetStream log) runs while, at random points, the node is killed (`kill -9`)
//! and, with the JetStream log, so is nats-server. Clients re-send an event until they get an
//! answer, as a careful client does. After each fault the node must be ready again; every tenth
//! fault and at the end the node is stopped and checked: every acknowledged event is in the log
//! exactly once, and the store equals what `cireg rebuild` makes of the log. During faults a
//! client may get a 503 or no connection, never a 500 nor any other refusal. Two campaigns
//! (root only) also take the node's disk: filled up (a small tmpfs), or made slow (the node's
//! process put in a blkio cgroup that allows it a few writes per second).
//!
//! `FAULT_POINTS` (default 50) faults per log, `FAULT_SEED` to repeat a run, `FAULT_ONLY` (a
//! row's label: `embedded`, `JetStream`, `embedded, full disk`, `embedded, slow disk`) to run
//! one campaign.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, RwLock,
    },
    time::{Duration, Instant},
};

use cireg_log::{EmbeddedLog, EventLog, JetStreamLog, JetStreamOptions};
use cireg_testkit::Rng;
use serde_json::{json, Value};
use support::{example, provider_of, provider_token, run_cli, Cireg};

/// What the clients saw, shared.
#[derive(Default)]
struct Seen {
    /// Event ids answered 201 or 200.
    acked: HashSet<String>,
    /// Answers that were neither an acknowledgement nor "try again" (503, 507, 429).
    wrong: Vec<String>,
    /// "Try again" answers and failed connections, by kind.
    retries: HashMap<String, u64>,
    /// The longest an acknowledgement took.
    slowest_ack: Duration,
}

/// The `i`-th event of client `c`: its dataset first, then studies of one subject after another,
/// an update of its dataset every tenth event and, every hundredth, the subject's consent
/// withdrawn (the next studies are another subject's).
fn event(c: usize, i: usize) -> Value {
    let subject = format!("FAULT-{c}-{}", i / 100);
    if i == 0 {
        let mut e = example("dataset.published");
        e["id"] = json!(format!("fault-{c}-{i}"));
        e["subject"] = json!(format!("fault-dataset-{c}"));
        return e;
    }
    let mut e = if i % 100 == 99 {
        let mut e = example("subject.consent.withdrawn");
        e["subject"] = json!(subject);
        e
    } else if i.is_multiple_of(10) {
        let mut e = example("dataset.updated");
        e["subject"] = json!(format!("fault-dataset-{c}"));
        e.as_object_mut().unwrap().remove("expectedversion");
        e
    } else {
        let mut e = example("study.registered");
        e["subject"] = json!(subject);
        e["data"]["studyInstanceUid"] = json!(format!("2.25.{}", 900_000_000 + c * 1_000_000 + i));
        e["data"]["dataset"] = json!(format!("fault-dataset-{c}"));
        e
    };
    e["id"] = json!(format!("fault-{c}-{i}"));
    e
}

/// How one attempt to send an event ended.
enum Sent {
    Acked,
    TryAgain(String),
    Wrong(String),
}

async fn send_http(http: &reqwest::Client, url: &str, token: &str, e: &Value) -> Sent {
    let r = http
        .post(format!("{url}/events"))
        .bearer_auth(token)
        .header("content-type", "application/cloudevents+json")
        .body(serde_json::to_vec(e).unwrap())
        .timeout(Duration::from_secs(20))
        .send()
        .await;
    match r {
        Ok(r) if matches!(r.status().as_u16(), 200 | 201) => Sent::Acked,
        Ok(r) if matches!(r.status().as_u16(), 429 | 503 | 507) => {
            // the problem's detail says which failure it was (numbers left out, to count kinds)
            let status = r.status().as_u16();
            let problem: Value = r.json().await.unwrap_or(Value::Null);
            let detail: String = problem["detail"].as_str().unwrap_or("no detail").chars().take(70).collect();
            let kind: String = detail.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect();
            Sent::TryAgain(format!("HTTP {status} ({kind})"))
        }
        Ok(r) => Sent::Wrong(format!("HTTP {} for {}: {}", r.status(), e["id"], r.text().await.unwrap_or_default())),
        Err(e) if e.is_connect() => Sent::TryAgain("HTTP connection refused".to_owned()),
        Err(e) if e.is_timeout() => Sent::TryAgain("HTTP timeout".to_owned()),
        // the node died with the request in flight
        Err(_) => Sent::TryAgain("HTTP connection lost".to_owned()),
    }
}

async fn send_nats(client: &async_nats::Client, e: &Value) -> Sent {
    let subject = format!("cireg.ingest.{}", provider_of(e));
    let payload = bytes::Bytes::from(serde_json::to_vec(e).unwrap());
    match tokio::time::timeout(Duration::from_secs(10), client.request(subject, payload)).await {
        Ok(Ok(reply)) => {
            let answer: Value = serde_json::from_slice(&reply.payload).unwrap_or(Value::Null);
            match answer["status"].as_u64() {
                None if answer["sequence"].is_u64() => Sent::Acked,
                Some(429 | 503 | 507) => Sent::TryAgain(format!("NATS {}", answer["status"])),
                _ => Sent::Wrong(format!("NATS answer for {}: {answer}", e["id"])),
            }
        }
        // nobody answers (the node is down) or NATS is down
        Ok(Err(_)) => Sent::TryAgain("NATS no answer".to_owned()),
        Err(_) => Sent::TryAgain("NATS timeout".to_owned()),
    }
}

/// Client `c`: sends its events one after another, each until it is acknowledged, until `stop`.
async fn client(
    c: usize,
    url: Arc<RwLock<String>>,
    nats: Option<String>,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
) {
    let http = reqwest::Client::new();
    let token = provider_token(&[&provider_of(&event(c, 1))]);
    let nats = match nats {
        Some(url) => Some(async_nats::connect(url).await.unwrap()),
        None => None,
    };
    for i in 0.. {
        let e = event(c, i);
        let id = e["id"].as_str().unwrap().to_owned();
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if paused.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let base = url.read().unwrap().clone();
            let sending = Instant::now();
            // with NATS, every other event goes over a NATS request
            let sent = match &nats {
                Some(client) if i % 2 == 1 => send_nats(client, &e).await,
                _ => send_http(&http, &base, &token, &e).await,
            };
            let answered = {
                let mut seen = seen.lock().unwrap();
                match sent {
                    Sent::Acked => {
                        seen.acked.insert(id.clone());
                        seen.slowest_ack = seen.slowest_ack.max(sending.elapsed());
                        true
                    }
                    Sent::Wrong(why) => {
                        seen.wrong.push(why);
                        true
                    }
                    Sent::TryAgain(why) => {
                        *seen.retries.entry(why).or_default() += 1;
                        false
                    }
                }
            };
            if answered {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One log's campaign, as the README's table row.
struct Outcome {
    faults: usize,
    acked: usize,
    lost: usize,
    doubled: usize,
    checks: usize,
    /// Checks whose store equalled its rebuild.
    equal: usize,
    /// Faults that were a full disk, or a slow one.
    full_disks: usize,
    slow_disks: usize,
    slowest_ack: Duration,
    /// Times the node stopped itself and was started again.
    restarted: usize,
    slowest_ready: Duration,
    retries: HashMap<String, u64>,
    wrong: Vec<String>,
}

/// Stops the node, checks the log against what was acknowledged and the store against a rebuild,
/// starts the node again. Returns (lost, doubled, store == rebuild).
async fn check(
    node: &mut Cireg,
    nats: Option<&cireg_testkit::NatsServer>,
    acked: &HashSet<String>,
) -> (usize, usize, bool) {
    node.wait_ready().await;
    node.stop();
    let data = node.data.clone();
    let events = match nats {
        None => EmbeddedLog::open(&data.join("log.redb")).unwrap().read_range(1, usize::MAX).await.unwrap(),
        Some(nats) => {
            let client = async_nats::connect(nats.url()).await.unwrap();
            let log = JetStreamLog::open(client, &JetStreamOptions::default()).await.unwrap();
            log.read_range(1, usize::MAX).await.unwrap()
        }
    };
    let mut in_log: HashMap<String, usize> = HashMap::new();
    // a withdrawal in the log erased the subject's studies, whether or not its client heard back
    let mut withdrawn = HashSet::new();
    for e in &events {
        let v: Value = serde_json::from_slice(&e.payload).unwrap();
        *in_log.entry(v["id"].as_str().unwrap().to_owned()).or_default() += 1;
        if v["type"] == "eu.cancerimage.subject.consent.withdrawn.v1" {
            withdrawn.insert(v["subject"].as_str().unwrap().to_owned());
        }
    }
    let erased = |id: &str| {
        // a study of a subject whose consent was withdrawn is erased from the log
        let (c, i) = id.trim_start_matches("fault-").split_once('-').unwrap();
        let e = event(c.parse().unwrap(), i.parse().unwrap());
        e["type"] == "eu.cancerimage.study.registered.v1" && withdrawn.contains(e["subject"].as_str().unwrap())
    };
    let lost = acked.iter().filter(|id| !in_log.contains_key(*id) && !erased(id)).count();
    let doubled = in_log.values().filter(|n| **n > 1).count();
    let path = data.to_str().unwrap();
    let (_, served, _) = run_cli(&["dump", "--data", path]);
    let mut rebuild = vec!["rebuild", "--data", path];
    let url = nats.map(|n| n.url());
    if let Some(url) = &url {
        rebuild.extend(["--nats", url]);
    }
    let (ok, out, err) = run_cli(&rebuild);
    assert!(ok, "{out}\n{err}");
    let (_, rebuilt, _) = run_cli(&["dump", "--data", path]);
    if served != rebuilt {
        // what differs, for the campaign's output
        let (a, b): (HashSet<&str>, HashSet<&str>) = (served.lines().collect(), rebuilt.lines().collect());
        for line in a.difference(&b).take(8) {
            eprintln!("  only in the served store: {line}");
        }
        for line in b.difference(&a).take(8) {
            eprintln!("  only in the rebuilt store: {line}");
        }
    }
    node.restart();
    node.wait_ready().await;
    (lost, doubled, served == rebuilt && !served.is_empty())
}

/// The faults of one campaign: which log, and whether the disk fills up too.
#[derive(Clone, Copy, PartialEq)]
enum Faults {
    /// kill -9 of the node (embedded log).
    Embedded,
    /// kill -9 of the node or of nats-server (JetStream log).
    JetStream,
    /// kill -9 of the node, or its disk (a small tmpfs) filled up, held full, then freed.
    EmbeddedFullDisk,
    /// kill -9 of the node, or its disk made slow for a while (a few writes per second).
    EmbeddedSlowDisk,
}

/// A blkio cgroup (cgroup v1, root only) that throttles the writes of the processes put in it to
/// the block device under a path; the limits are lifted and the cgroup removed when dropped.
struct SlowDisk {
    cgroup: std::path::PathBuf,
    /// The device's `major:minor` (the whole disk: throttling applies to disks, not partitions).
    device: String,
}

impl SlowDisk {
    const BLKIO: &'static str = "/sys/fs/cgroup/blkio";

    fn new(under: &std::path::Path) -> Result<SlowDisk, String> {
        use std::os::unix::fs::MetadataExt;
        std::fs::create_dir_all(under).map_err(|e| e.to_string())?;
        let dev = std::fs::metadata(under).map_err(|e| e.to_string())?.dev();
        let (major, minor) = (libc_major(dev), libc_minor(dev));
        let sys = std::path::PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
        if !sys.exists() {
            return Err(format!(
                "{} is not on a block device ({major}:{minor}): nothing to slow down",
                under.display()
            ));
        }
        // a partition: its disk is the directory above
        let device = if sys.join("partition").exists() {
            std::fs::read_to_string(sys.join("../dev")).map_err(|e| e.to_string())?.trim().to_owned()
        } else {
            format!("{major}:{minor}")
        };
        let cgroup = std::path::Path::new(Self::BLKIO).join(format!("cireg-faults-{}", std::process::id()));
        std::fs::create_dir_all(&cgroup)
            .map_err(|e| format!("{}: {e} (cgroup v1 blkio, as root)", cgroup.display()))?;
        Ok(SlowDisk { cgroup, device })
    }

    fn write(&self, file: &str, value: &str) {
        std::fs::write(self.cgroup.join(file), value).unwrap_or_else(|e| panic!("{file} <- {value}: {e}"));
    }

    /// Lets process `pid` write `iops` times and `bps` bytes a second to the disk.
    fn slow(&self, pid: u32, iops: u64, bps: u64) {
        self.write("blkio.throttle.write_iops_device", &format!("{} {iops}", self.device));
        self.write("blkio.throttle.write_bps_device", &format!("{} {bps}", self.device));
        self.write("cgroup.procs", &pid.to_string());
    }

    /// Lifts the limits (and moves every process of the cgroup back to the root).
    fn lift(&self) {
        self.write("blkio.throttle.write_iops_device", &format!("{} 0", self.device));
        self.write("blkio.throttle.write_bps_device", &format!("{} 0", self.device));
        let procs = std::fs::read_to_string(self.cgroup.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines() {
            // a process that ended meanwhile is no longer there to move
            let _ = std::fs::write(std::path::Path::new(Self::BLKIO).join("cgroup.procs"), pid);
        }
    }
}

impl Drop for SlowDisk {
    fn drop(&mut self) {
        self.lift();
        let _ = std::fs::remove_dir(&self.cgroup);
    }
}

/// `major(3)` and `minor(3)` of a Linux `dev_t`.
fn libc_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)
}

fn libc_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)
}

/// A tmpfs mounted for the campaign (root only), unmounted when dropped.
struct Tmpfs {
    at: std::path::PathBuf,
}

impl Tmpfs {
    fn mount(size: &str, at: &std::path::Path) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Tmpfs { at: at.to_owned() })
    }

    /// Fills the file system with a ballast file until a write fails.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let ballast = self.at.join("ballast");
        let mut file = std::fs::File::create(&ballast).unwrap();
        let chunk = vec![0u8; 1 << 20];
        while file.write_all(&chunk).and_then(|_| file.flush()).is_ok() {}
        // what is left is smaller than a chunk: fill it too
        while file.write_all(&[0u8; 4096]).is_ok() {}
        ballast
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

async fn campaign(faults: Faults, points: usize, random: &mut Rng) -> Outcome {
    let mut nats = (faults == Faults::JetStream).then(cireg_testkit::NatsServer::start);
    let dir = tempfile::tempdir().unwrap();
    // the node's data on a small file system of its own (its log file beside it, outside)
    let tmpfs = match faults {
        Faults::EmbeddedFullDisk => {
            Some(Tmpfs::mount("512m", &dir.path().join("node")).expect("mounting a tmpfs for the full disk"))
        }
        _ => None,
    };
    let slow_disk = match faults {
        Faults::EmbeddedSlowDisk => {
            Some(SlowDisk::new(&dir.path().join("node")).expect("a blkio cgroup for the slow disk"))
        }
        _ => None,
    };
    let mut args = vec!["--public-base", "http://registry.test", "--ingest-rate", "100000"];
    let nats_url = nats.as_ref().map(|n| n.url());
    if let Some(url) = &nats_url {
        args.extend(["--nats", url]);
    }
    let mut node = Cireg::start(&dir.path().join("node"), &args);
    node.wait_ready().await;
    assert_eq!(node.post_event(&example("provider.registered")).await.0, 201);
    let url = Arc::new(RwLock::new(node.listen.clone()));
    let (seen, stop, paused) =
        (Arc::new(Mutex::new(Seen::default())), Arc::default(), Arc::new(AtomicBool::new(false)));
    let clients: Vec<_> = (0..6)
        .map(|c| {
            let task = client(c, url.clone(), nats_url.clone(), seen.clone(), Arc::clone(&stop), paused.clone());
            tokio::spawn(task)
        })
        .collect();
    let mut outcome = Outcome {
        faults: 0,
        acked: 0,
        lost: 0,
        doubled: 0,
        checks: 0,
        equal: 0,
        full_disks: 0,
        slow_disks: 0,
        slowest_ack: Duration::ZERO,
        restarted: 0,
        slowest_ready: Duration::ZERO,
        retries: HashMap::new(),
        wrong: Vec::new(),
    };
    for point in 1..=points {
        tokio::time::sleep(Duration::from_millis(200 + random.below(1300))).await;
        match (&mut nats, &tmpfs, &slow_disk, random.below(2)) {
            (Some(nats), _, _, 1) => nats.restart(),
            (_, Some(tmpfs), _, 1) => {
                let ballast = tmpfs.fill();
                tokio::time::sleep(Duration::from_millis(500 + random.below(1500))).await;
                std::fs::remove_file(ballast).unwrap();
                outcome.full_disks += 1;
            }
            (_, _, Some(slow), 1) => {
                // a few writes a second, for 1–4 s; sometimes the node is killed while it lasts
                slow.slow(node.pid(), 4 + random.below(12), 256 * 1024);
                tokio::time::sleep(Duration::from_millis(1000 + random.below(3000))).await;
                if random.below(4) == 0 {
                    node.restart();
                }
                slow.lift();
                outcome.slow_disks += 1;
            }
            _ => node.restart(),
        }
        outcome.faults += 1;
        *url.write().unwrap() = node.listen.clone();
        // the node comes back ready (the clients wait meanwhile, so that it can catch up)
        paused.store(true, Ordering::Relaxed);
        let start = Instant::now();
        // as a supervisor (systemd's Restart=on-failure) would, start a node that stopped itself
        loop {
            if node.exited() {
                node.restart();
                outcome.restarted += 1;
                *url.write().unwrap() = node.listen.clone();
            }
            let ready = reqwest::get(node.url("/readyz")).await.is_ok_and(|r| r.status() == 200);
            if ready {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(120), "the node never came back:\n{}", node.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        outcome.slowest_ready = outcome.slowest_ready.max(start.elapsed());
        if point.is_multiple_of(10) || point == points {
            let acked = seen.lock().unwrap().acked.clone();
            let (lost, doubled, equal) = check(&mut node, nats.as_ref(), &acked).await;
            *url.write().unwrap() = node.listen.clone();
            (outcome.lost, outcome.doubled) = (lost, doubled);
            outcome.equal += usize::from(equal);
            outcome.checks += 1;
            eprintln!(
                "fault {point}: {} acknowledged, {lost} lost, {doubled} doubled, store == rebuild: {equal}",
                acked.len()
            );
        }
        paused.store(false, Ordering::Relaxed);
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let seen = seen.lock().unwrap();
    outcome.acked = seen.acked.len();
    outcome.retries = seen.retries.clone();
    outcome.slowest_ack = seen.slowest_ack;
    outcome.wrong = seen.wrong.clone();
    node.stop();
    outcome
}

#[tokio::test]
#[ignore = "the fault campaign runs for minutes: scripts/faults.sh"]
async fn fault_campaign() {
    let points: usize = std::env::var("FAULT_POINTS").ok().and_then(|p| p.parse().ok()).unwrap_or(50);
    let seed: u64 = std::env::var("FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("fault campaign: {points} faults per log, FAULT_SEED={seed}");
    let mut random = Rng(seed);
    let mut rows = Vec::new();
    for (label, faults) in [
        ("embedded", Faults::Embedded),
        ("JetStream", Faults::JetStream),
        ("embedded, full disk", Faults::EmbeddedFullDisk),
        ("embedded, slow disk", Faults::EmbeddedSlowDisk),
    ] {
        if std::env::var("FAULT_ONLY").is_ok_and(|only| only != label) {
            eprintln!("not run: {label} (FAULT_ONLY)");
            continue;
        }
        if faults == Faults::EmbeddedFullDisk {
            if let Err(e) = Tmpfs::mount("1m", &tempfile::tempdir().unwrap().path().join("probe")) {
                // not a silent skip: the table says so
                eprintln!("the full-disk campaign needs to mount a tmpfs (root): {e}");
                continue;
            }
        }
        if faults == Faults::EmbeddedSlowDisk {
            if let Err(e) = SlowDisk::new(&tempfile::tempdir().unwrap().path().join("probe")) {
                eprintln!("the slow-disk campaign needs a blkio cgroup (cgroup v1, root) over a block device: {e}");
                continue;
            }
        }
        let outcome = campaign(faults, points, &mut random).await;
        rows.push((label, outcome));
    }
    println!("\n| log | faults (full disk, slow disk) | node stopped itself | acknowledged | lost | doubled | checks: store == rebuild | slowest back to ready | slowest acknowledgement | client retries |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (label, o) in &rows {
        let mut retries: Vec<_> = o.retries.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        retries.sort();
        println!(
            "| {label} | {} ({}, {}) | {} | {} | {} | {} | {} of {} | {:.1} s | {:.1} s | {} |",
            o.faults,
            o.full_disks,
            o.slow_disks,
            o.restarted,
            o.acked,
            o.lost,
            o.doubled,
            o.equal,
            o.checks,
            o.slowest_ready.as_secs_f64(),
            o.slowest_ack.as_secs_f64(),
            retries.join(", ")
        );
    }
    for (label, o) in &rows {
        assert!(o.wrong.is_empty(), "{label}: answers that were neither an acknowledgement nor a 503: {:?}", o.wrong);
        assert_eq!((o.lost, o.doubled), (0, 0), "{label}: acknowledged events lost or doubled");
        assert_eq!(o.equal, o.checks, "{label}: a store differed from its rebuild");
    }
}
