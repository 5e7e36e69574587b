//! The seed README's stream example, game side: node `1.4.1` echoes every byte of
//! every stream a gateway opens to it (one stream per game client).
//!
//! ```text
//! cargo run -p examples --bin gameserver [-- MEMBERS.json]
//! ```
//! `CLUSTERGO_DIALECT=go` runs it in the Go seed's dialect, beside a Go gateserver.

use std::process::ExitCode;

use clustergo::LogicAddr;
use clustergo::membership::FileMembership;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> ExitCode {
    examples::init_logging();
    let members = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.json").to_owned());
    let node = examples::node_from_env();
    node.on_new_stream(|mut stream| async move {
        let peer = stream.peer();
        let mut buf = vec![0u8; 16 * 1024];
        let mut total = 0usize;
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    total += n;
                    if stream.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = stream.shutdown().await;
        println!("gameserver: stream from {peer} closed after {total} bytes");
    });
    let local: LogicAddr = "1.4.1".parse().expect("valid address");
    if let Err(e) = node.start(FileMembership::new(&members), local).await {
        eprintln!("gameserver: cannot start {local} from {members}: {e}");
        return ExitCode::FAILURE;
    }
    println!("gameserver: {local} serving streams");
    node.wait().await;
    ExitCode::SUCCESS
}
