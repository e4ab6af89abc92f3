//! What a process has used, from /proc: for tests and the benchmark that check a node goes back
//! to idle.

use std::process::Command;

/// CPU seconds (user + system) process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process has a /proc entry");
    // the fields after the command name, which is in parentheses and may hold spaces
    let fields: Vec<&str> = stat.rsplit_once(')').expect("a /proc stat line").1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / clock_ticks_per_second()
}

/// The kernel's clock ticks per second (the unit of `/proc/<pid>/stat`'s CPU times).
pub fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().expect("getconf runs");
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("CLK_TCK is a number")
    })
}
