//! Test harness: a real `nats-server` with JetStream, on a free loopback port, storing into its
//! own temp dir, which a test can stop and start again.
//!
//! The binary is `$NATS_SERVER_BIN`, else `nats-server` on `PATH`, else `/usr/sbin/nats-server`
//! (Debian's package). A missing binary fails the test with a message that says how to install
//! it; tests never skip silently.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
}

impl NatsServer {
    /// Starts a JetStream-enabled server on a free port.
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// Starts a server with extra command-line arguments (e.g. `-c config`).
    pub fn start_with_args(args: &[&str]) -> Self {
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            extra_args: args.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let store = self.dir.path().join("jetstream");
        let log = std::fs::File::create(self.dir.path().join("nats-server.log")).unwrap();
        let child = Command::new(nats_server_bin())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(&store)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on {} within 20 s", self.port);
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
