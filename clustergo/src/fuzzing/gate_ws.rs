//! The gate's WebSocket server side: the request head reader and upgrade check
//! (`crate::gate::http_head`), then tungstenite's handshake and frame parser with the
//! gate's configuration (`crate::gate::ws::ws_config`).

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Message, Role};

use super::{Target, Wire, random_splits, rng_for, run_now};
use crate::gate::GateConfig;
use crate::gate::http_head::{MAX_REQUEST_HEAD, is_upgrade, read_head};
use crate::gate::ws::ws_config;

/// The WebSocket target.
pub const TARGET: Target = Target {
    name: "gate_ws",
    run,
    seeds,
};

/// A limit inputs reach: a longer frame or message must fail.
const MAX_PACKET: usize = 1024;

/// Plays `data` as what a client sends the gate, arriving in pieces: a request head
/// (bounded, found wherever the reads were cut), and after an upgrade the WebSocket
/// frames; also `data` as frames alone, past the handshake. Messages stay within the
/// limit, and what the server writes back stays proportional to what it read.
pub fn run(data: &[u8]) {
    let cuts = random_splits(&mut rng_for(data), data.len());
    // The gate's settings, but a small read buffer: tungstenite allocates and zeroes it
    // for every stream, and its size only changes how reads are cut (which the cuts
    // above vary anyway).
    let config = ws_config(&GateConfig {
        max_packet_size: MAX_PACKET,
        ..GateConfig::default()
    })
    .read_buffer_size(256);

    let mut wire = Wire::new(data, cuts.clone());
    let head = run_now(read_head(&mut wire));
    assert!(
        wire.pos <= MAX_REQUEST_HEAD,
        "read {} bytes of head",
        wire.pos
    );
    if let Ok((read, head_len)) = head {
        assert!(head_len <= read.len() && read.len() <= MAX_REQUEST_HEAD);
        assert!(read[..head_len].ends_with(b"\r\n\r\n"));
        assert_eq!(&read[..], &data[..read.len()]);
        if is_upgrade(&read[..head_len]) {
            // The gate replays what it read, then the rest: the same bytes again.
            let mut wire = Wire::new(data, cuts.clone());
            run_now(async {
                if let Ok(mut ws) =
                    tokio_tungstenite::accept_async_with_config(&mut wire, Some(config)).await
                {
                    read_all(&mut ws, data.len()).await;
                }
            });
            check_output(&wire, data);
        }
    }

    let mut wire = Wire::new(data, cuts);
    run_now(async {
        let mut ws = WebSocketStream::from_raw_socket(&mut wire, Role::Server, Some(config)).await;
        read_all(&mut ws, data.len()).await;
    });
    check_output(&wire, data);
}

/// Reads messages until the stream ends or fails; each is within the limit.
async fn read_all<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, len: usize) {
    // Every frame takes at least two bytes: more messages than that is a loop.
    for _ in 0..=len / 2 + 1 {
        match ws.next().await {
            Some(Ok(Message::Binary(p))) => assert!(p.len() <= MAX_PACKET),
            Some(Ok(Message::Text(t))) => assert!(t.len() <= MAX_PACKET),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return,
        }
    }
    panic!("more messages than frames could fit in {len} bytes");
}

fn check_output(wire: &Wire<'_>, data: &[u8]) {
    assert!(
        wire.written <= 2 * data.len() + 4096,
        "wrote {} bytes for {} read",
        wire.written,
        data.len()
    );
}

/// A client frame (masked, as a client must send them) with a short payload.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut f = vec![first];
    match payload.len() {
        n @ 0..=125 => f.push(0x80 | n as u8),
        n => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    f
}

/// An upgrade request followed by frames, frames alone, and a plain HTTP request.
pub fn seeds() -> Vec<Vec<u8>> {
    let head = b"GET /gate HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";
    let frames = [
        frame(0x82, b"login:alice"),                  // binary
        frame(0x02, b"frag"),                         // binary, more to come
        frame(0x80, b"ment"),                         // continuation, final
        frame(0x89, b"ping"),                         // ping
        frame(0x81, "text é".as_bytes()),             // text
        frame(0x82, &[7; 300]),                       // 16-bit length
        frame(0x88, &[0x03, 0xe8, b'b', b'y', b'e']), // close 1000
    ]
    .concat();
    vec![
        [&head[..], &frames].concat(),
        head.to_vec(),
        frames,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    ]
}
