//! The seed README's stream example, client side: connects to the gateway, sends
//! data, and checks that the game server's echo comes back intact. Exits 0 only on
//! success, non-zero on any failure or after 10 s.
//!
//! ```text
//! cargo run -p examples --bin client [-- GATE_ADDR]
//! ```
//! Default gateway: `127.0.0.1:8100`.

use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::main]
async fn main() -> ExitCode {
    let gate = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8100".to_owned());
    match examples::within("client", Duration::from_secs(10), run(&gate)).await {
        Ok(Ok(n)) => {
            println!("client: {n} bytes echoed intact through {gate}");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) | Err(e) => {
            eprintln!("client FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(gate: &str) -> Result<usize, String> {
    // The gateway may still be starting: retry the connection for a while.
    let mut conn = loop {
        match TcpStream::connect(gate).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let data: Vec<u8> = (0..256 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let (mut rd, mut wr) = conn.split();
    let send = async {
        for chunk in data.chunks(1000) {
            wr.write_all(chunk).await?;
        }
        wr.shutdown().await
    };
    let mut back = Vec::with_capacity(data.len());
    let recv = rd.read_to_end(&mut back);
    let (sent, received) = tokio::join!(send, recv);
    sent.map_err(|e| format!("send: {e}"))?;
    received.map_err(|e| format!("receive: {e}"))?;
    if back != data {
        return Err(format!(
            "echo differs: sent {} bytes, got {}",
            data.len(),
            back.len()
        ));
    }
    Ok(back.len())
}
