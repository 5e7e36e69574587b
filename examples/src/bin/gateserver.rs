//! The seed README's stream example, gateway side: node `1.3.1` accepts game
//! clients over TCP and opens one stream per client to a game server (type 4),
//! copying bytes both ways.
//!
//! ```text
//! cargo run -p examples --bin gateserver [-- MEMBERS.json [CLIENT_LISTEN_ADDR]]
//! ```
//! Defaults: `examples/cluster.json`, clients on `127.0.0.1:8100`.
//! `CLUSTERGO_DIALECT=go` runs it in the Go seed's dialect, beside a Go gameserver.

use std::process::ExitCode;
use std::time::Duration;

use clustergo::membership::FileMembership;
use clustergo::{LogicAddr, Node};
use tokio::net::{TcpListener, TcpStream};

const GAME_TYPE: u32 = 4;

#[tokio::main]
async fn main() -> ExitCode {
    examples::init_logging();
    let mut args = std::env::args().skip(1);
    let members = args
        .next()
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.json").to_owned());
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8100".to_owned());
    let node = examples::node_from_env();
    let local: LogicAddr = "1.3.1".parse().expect("valid address");
    if let Err(e) = node.start(FileMembership::new(&members), local).await {
        eprintln!("gateserver: cannot start {local} from {members}: {e}");
        return ExitCode::FAILURE;
    }
    let clients = match TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("gateserver: cannot listen for clients on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("gateserver: {local} accepting game clients on {listen}");
    loop {
        let (client, from) = match clients.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("gateserver: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let node = node.clone();
        tokio::spawn(async move {
            if let Err(e) = bridge(&node, client).await {
                eprintln!("gateserver: client {from}: {e}");
            }
        });
    }
}

/// One client ↔ one stream to a game server. A game server that is still starting
/// is waited for, up to five seconds.
async fn bridge(node: &Node, mut client: TcpStream) -> Result<(), String> {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(5);
    let (game, mut stream) = loop {
        let attempt = match node.get_addr_by_type(GAME_TYPE) {
            Some(game) => node
                .open_stream(game)
                .await
                .map(|s| (game, s))
                .map_err(|e| e.to_string()),
            None => Err("no game server available".to_owned()),
        };
        match attempt {
            Ok(ok) => break ok,
            Err(e) if tokio::time::Instant::now() >= give_up => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let (up, down) = tokio::io::copy_bidirectional(&mut client, &mut stream)
        .await
        .map_err(|e| e.to_string())?;
    println!("gateserver: client done via {game}: {up} bytes up, {down} down");
    Ok(())
}
