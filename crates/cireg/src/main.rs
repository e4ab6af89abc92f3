#![doc = include_str!("../README.md")]
// the doc comments of the arguments are the command's --help text, written for a terminal
// (`http://<listen address>`, bare URLs), not for rustdoc
#![allow(rustdoc::invalid_html_tags, rustdoc::bare_urls)]

mod bench;
mod connect;
mod demo;
mod load;
mod publish;
mod serve;
mod token;

use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cireg", version, about = "Metadata registry of a federated European cancer imaging infrastructure")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the event log is: an embedded file under the data directory, or NATS JetStream.
#[derive(clap::Args, Clone, Debug)]
pub struct LogArgs {
    /// Directory for the store (and the embedded log when --nats is not given).
    #[arg(long, default_value = "cireg-data", env = "CIREG_DATA")]
    pub data: PathBuf,
    /// NATS server URL (nats:// or tls://), or a cluster's servers comma-separated; the event log
    /// is then the JetStream stream CIREG_EVENTS. Put credentials in --nats-user/--nats-password,
    /// not in the URL.
    #[arg(long, env = "CIREG_NATS")]
    pub nats: Option<String>,
    /// Replicas of cireg's JetStream streams: 1 on a single server, 3 on a cluster of three (or
    /// more), so that the log survives the loss of a server. Streams that exist with another
    /// number are scaled to this one.
    #[arg(long, default_value_t = 1, env = "CIREG_NATS_REPLICAS", value_parser = clap::value_parser!(u8).range(1..=5))]
    pub nats_replicas: u8,
    #[command(flatten)]
    pub nats_args: connect::NatsArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry: ingest (HTTP and NATS), projector and HTTP API in one process.
    Serve(Box<serve::ServeArgs>),
    /// Send events (files with one event, a JSON array, or one event per line) and print each answer.
    Publish(publish::PublishArgs),
    /// Print the synthetic demo catalogue as events, one per line.
    Demo {
        /// Write a JSON array (a CloudEvents batch) to this file instead of lines on stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Replay the whole log into a fresh store, then replace the old store with it.
    Rebuild {
        #[command(flatten)]
        log: LogArgs,
        /// Public base URL the IRIs are minted under (must match `serve`'s). Default: the one
        /// the store was built for, else http://127.0.0.1:8080.
        #[arg(long, env = "CIREG_PUBLIC_BASE")]
        public_base: Option<String>,
    },
    /// Check events against the schemas, offline. Exits non-zero if any is invalid.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print every quad of the store as sorted N-Quads (for comparing stores).
    Dump {
        #[arg(long, default_value = "cireg-data", env = "CIREG_DATA")]
        data: PathBuf,
        /// Dump the public mirror (what the public SPARQL endpoint reads) instead of the store.
        #[arg(long)]
        public: bool,
    },
    /// Measure ingest and projection against raw JetStream publish and raw Oxigraph bulk load.
    Bench(bench::BenchArgs),
    /// Run a sustained mixed load (harvesters, searchers, FHIR and SPARQL clients, publishing
    /// providers) against a node of its own on loopback, and print latencies, refusals and the
    /// node's memory over the run.
    Load(load::LoadArgs),
    /// Mint a signed bearer token from a local key, for development and the demo (made on first
    /// use; --jwks writes its public key for `serve --jwks`).
    Token(token::TokenArgs),
    /// Print a shell completion script (e.g. `cireg completions bash > /etc/bash_completion.d/cireg`).
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (roff): `cireg.1` and one page per command (`cireg-serve.1`, ...),
    /// or print `cireg.1` alone without --out-dir (e.g. `cireg man | man -l -`).
    Man {
        /// Directory to write the pages to (made if missing).
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CIREG_LOG").unwrap_or_else(|_| "info,cireg=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::serve(*args).await,
            Command::Publish(args) => publish::publish(args).await,
            Command::Demo { out } => write_demo(out),
            Command::Rebuild { log, public_base } => serve::rebuild(log, public_base.as_deref()).await,
            Command::Validate { files } => validate(files),
            Command::Dump { data, public } => serve::dump(&data, if public { "public" } else { "store" }),
            Command::Bench(args) => bench::bench(args).await,
            Command::Load(args) => load::load(args).await,
            Command::Token(args) => token::token(args),
            Command::Completions { shell } => {
                clap_complete::generate(shell, &mut Cli::command(), "cireg", &mut std::io::stdout());
                Ok(())
            }
            Command::Man { out_dir } => write_man(out_dir),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The manual pages, generated from the same definition the arguments are parsed with.
fn write_man(out_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let cmd = Cli::command();
    match out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("making {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir).with_context(|| format!("writing the pages to {}", dir.display()))?;
            println!("cireg man: pages written to {}", dir.display());
        }
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?,
    }
    Ok(())
}

fn write_demo(out: Option<PathBuf>) -> anyhow::Result<()> {
    let events = demo::demo_events();
    match out {
        Some(path) => std::fs::write(&path, serde_json::to_vec_pretty(&events)?)?,
        None => {
            for e in events {
                println!("{}", serde_json::to_string(&e)?);
            }
        }
    }
    Ok(())
}

/// Splits a file into events: one object, an array, or one object per line.
pub fn events_in(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(items)) => {
            Ok(items.iter().map(|v| serde_json::to_vec(v).unwrap_or_default()).collect())
        }
        Ok(_) => Ok(vec![bytes.to_vec()]),
        Err(_) if text.lines().filter(|l| !l.trim().is_empty()).count() > 1 => {
            Ok(text.lines().filter(|l| !l.trim().is_empty()).map(|l| l.as_bytes().to_vec()).collect())
        }
        // one broken event: let validation say what is wrong with it
        Err(_) => Ok(vec![bytes.to_vec()]),
    }
}

/// Checks events offline: the JSON Schema of their type and, for a published dataset, the
/// application profile's SHACL shapes (as the registry's gate would on ingest).
fn validate(files: Vec<PathBuf>) -> anyhow::Result<()> {
    let mut bad = 0;
    let mut gate: Option<cireg_ingest::ProfileGate> = None;
    for file in files {
        let bytes = std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let events = events_in(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        for (i, event) in events.iter().enumerate() {
            let at = if events.len() > 1 { format!("{}[{i}]", file.display()) } else { file.display().to_string() };
            match cireg_model::validate_event(event) {
                Ok(e) if e.event_type == cireg_model::EventType::DatasetPublished => {
                    if gate.is_none() {
                        let base = cireg_projector::PublicBase::new("https://registry.invalid")?;
                        gate = Some(cireg_ingest::ProfileGate::load(base)?);
                    }
                    let mut aggregate = cireg_model::Aggregate::default();
                    aggregate.apply(1, &e);
                    match gate.as_ref().map(|g| g.check(e.provider.as_str(), &e.aggregate, &aggregate.state)) {
                        Some(Err(cireg_ingest::GateError::Rejected(rejection))) => {
                            bad += 1;
                            println!("{at}: INVALID against the application profile");
                            if let cireg_model::Rejection::Profile(violations) = rejection {
                                for v in violations {
                                    println!("  {} {}: {v}", v.pointer.as_deref().unwrap_or("(dataset)"), v.constraint);
                                }
                            } else {
                                println!("  {rejection}");
                            }
                        }
                        Some(Err(cireg_ingest::GateError::Engine(e))) => anyhow::bail!("SHACL validation failed: {e}"),
                        _ => println!("{at}: valid {} {} (schema and application profile)", e.event_type, e.aggregate),
                    }
                }
                Ok(e) => println!("{at}: valid {} {}", e.event_type, e.aggregate),
                Err(rejection) => {
                    bad += 1;
                    println!("{at}: INVALID");
                    if let cireg_model::Rejection::Invalid(violations) = rejection {
                        for v in violations {
                            println!("  {v}");
                        }
                    } else {
                        println!("  {rejection}");
                    }
                }
            }
        }
    }
    if bad > 0 {
        anyhow::bail!("{bad} invalid event(s)");
    }
    Ok(())
}
