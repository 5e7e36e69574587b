//! A standalone discovery server, and a small client for it.
//!
//! ```text
//! # serve the members of a file (JSON or TOML, as FileMembership reads them)
//! cargo run -p examples --bin discovery -- --listen 127.0.0.1:8110 --members examples/cluster.json
//! # follow a running server, printing every change
//! cargo run -p examples --bin discovery -- --server 127.0.0.1:8110 --watch
//! # change it
//! cargo run -p examples --bin discovery -- --server 127.0.0.1:8110 --put '{"logic":"1.1.9","net":"127.0.0.1:8119"}'
//! cargo run -p examples --bin discovery -- --server 127.0.0.1:8110 --remove 1.1.9
//! ```
//!
//! Server and clients prove the cluster secret to each other: `CLUSTERGO_SECRET` if
//! set (use the nodes' value), else the development secret, so the commands above
//! work as they are on one machine.
//!
//! Logging follows `RUST_LOG` (default `info`).

use std::process::ExitCode;

use clustergo::LogicAddr;
use clustergo::membership::{
    DiscoveryClient, DiscoveryServer, FileMembership, Member, Membership, MembershipAdmin,
};

const USAGE: &str = "usage:
  discovery --listen ADDR [--members FILE]
  discovery --server ADDR (--watch | --put MEMBER_JSON | --remove LOGIC)";

#[derive(Debug)]
enum Command {
    Serve {
        listen: String,
        members: Option<String>,
    },
    Watch(String),
    Put(String, Member),
    Remove(String, LogicAddr),
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut listen = None;
    let mut members = None;
    let mut server = None;
    let mut action = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--listen" => listen = Some(value()?),
            "--members" => members = Some(value()?),
            "--server" => server = Some(value()?),
            "--watch" => action = Some(("watch", String::new())),
            "--put" => action = Some(("put", value()?)),
            "--remove" => action = Some(("remove", value()?)),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    match (listen, server, action) {
        (Some(listen), None, None) => Ok(Command::Serve { listen, members }),
        (None, Some(server), Some(("watch", _))) => Ok(Command::Watch(server)),
        (None, Some(server), Some(("put", json))) => {
            let member = serde_json::from_str(&json).map_err(|e| format!("bad member: {e}"))?;
            Ok(Command::Put(server, member))
        }
        (None, Some(server), Some(("remove", logic))) => {
            let logic = logic.parse().map_err(|e| format!("{e}"))?;
            Ok(Command::Remove(server, logic))
        }
        _ => Err("choose either --listen, or --server with one action".into()),
    }
}

fn read_members(path: &str) -> Result<Vec<Member>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    FileMembership::parse(&text, path.ends_with(".toml")).map_err(|e| format!("{path}: {e}"))
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Serve { listen, members } => {
            let members = match members {
                Some(path) => read_members(&path)?,
                None => Vec::new(),
            };
            let count = members.len();
            let server = DiscoveryServer::bind(&listen, members)
                .await
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            tracing::info!(addr = %server.local_addr(), "serving {count} members");
            // Runs until the process is stopped; clients reconnect to a restarted server.
            std::future::pending::<()>().await;
            Ok(())
        }
        Command::Watch(server) => {
            let client = DiscoveryClient::new(&server);
            let mut changes = client.subscribe().await.map_err(|e| e.to_string())?;
            while let Some(change) = changes.recv().await {
                for m in &change.added {
                    println!("added   {}", serde_json::to_string(m).unwrap_or_default());
                }
                for m in &change.updated {
                    println!("updated {}", serde_json::to_string(m).unwrap_or_default());
                }
                for m in &change.removed {
                    println!("removed {}", m.logic());
                }
            }
            Ok(())
        }
        Command::Put(server, member) => DiscoveryClient::new(&server)
            .put(member)
            .await
            .map_err(|e| e.to_string()),
        Command::Remove(server, logic) => DiscoveryClient::new(&server)
            .remove(logic)
            .await
            .map_err(|e| e.to_string()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse_args(&args) {
        Ok(command) => command,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("discovery: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("discovery: {e}");
            ExitCode::FAILURE
        }
    }
}
