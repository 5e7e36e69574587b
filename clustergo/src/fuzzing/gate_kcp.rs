//! The gate's KCP front end: the admission check on a datagram from an unknown source
//! (`opens_session`), the `kcp` crate's segment parser fed as the gate feeds it, and
//! the packet codec on top (`KcpCodec`: TCP's plus a close marker).

use std::cell::Cell;
use std::io::{self, Write};
use std::rc::Rc;

use ::kcp::Kcp;
use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::Encoder;

use super::{Target, feed_round_trip, random_splits, rng_for};
use crate::gate::GateConfig;
use crate::gate::kcp::{CLOSE_MARKER, KcpCodec, KcpFrame};
use crate::gate::kcp_server::{conv_of, opens_session, set_conv};

/// The KCP target.
pub const TARGET: Target = Target {
    name: "gate_kcp",
    run,
    seeds,
};

/// A limit inputs reach: a longer declared length must fail before it is reserved.
const MAX_PACKET: usize = 1024;
/// KCP segment header bytes.
const HEADER: usize = 24;
/// KCP command of a data segment.
const CMD_PUSH: u8 = 81;

/// Plays `data` cut into datagrams (all from one source) through the server's path:
/// the first admissible one opens a session, later ones of its conversation are fed
/// to it, and what the session delivers is decoded as packets. What the session sends
/// back (acks) stays proportional to what came in: a spoofed source must not make the
/// gate amplify. `data` is also decoded directly as a packet stream.
pub fn run(data: &[u8]) {
    packets(data);
    let cuts = random_splits(&mut rng_for(data), data.len());
    let sent = Rc::new(Cell::new(0));
    let mut session: Option<Kcp<Counter>> = None;
    let mut delivered = Vec::new();
    let mut at = 0;
    for end in cuts.into_iter().chain([data.len()]) {
        let end = end.clamp(at, data.len());
        let mut datagram = data[at..end].to_vec();
        at = end;
        if datagram.len() < HEADER {
            continue;
        }
        let opens = opens_session(&datagram);
        let mut copy = datagram.clone();
        set_conv(&mut copy, 0x0102_0304);
        assert_eq!(opens_session(&copy), opens, "the conv decides nothing");
        let conv = conv_of(&datagram);
        match &mut session {
            Some(kcp) if conv == kcp.conv() || conv == 0 => set_conv(&mut datagram, kcp.conv()),
            _ if opens => {
                let conv = if conv == 0 { 1 } else { conv };
                set_conv(&mut datagram, conv);
                let mut kcp = Kcp::new_stream(conv, Counter(sent.clone()));
                GateConfig::default().kcp.apply_config(&mut kcp);
                let _ = kcp.update(0);
                session = Some(kcp);
            }
            _ => continue,
        }
        let kcp = session.as_mut().expect("a session was opened above");
        if kcp.input(&datagram).is_ok() {
            let _ = kcp.flush_ack();
        }
        while let Ok(size) = kcp.peeksize() {
            let mut buf = vec![0u8; size];
            let n = kcp.recv(&mut buf).expect("peeksize said it was ready");
            delivered.extend_from_slice(&buf[..n]);
        }
    }
    assert!(
        delivered.len() <= data.len(),
        "KCP delivered more than it got"
    );
    let sent = sent.get();
    assert!(
        sent <= 2 * data.len() + 1500,
        "{sent} bytes sent for {} in",
        data.len()
    );
    packets(&delivered);
}

/// Decodes a KCP byte stream (whole and split); every item re-encodes to itself.
fn packets(stream: &[u8]) {
    let decoded = feed_round_trip(|| KcpCodec::new(MAX_PACKET), stream, 4 + MAX_PACKET, encode);
    for frame in decoded.items {
        if let KcpFrame::Packet(p) = frame {
            assert!(p.len() <= MAX_PACKET);
        }
    }
}

fn encode(frame: KcpFrame) -> BytesMut {
    let mut wire = BytesMut::new();
    KcpCodec::new(MAX_PACKET)
        .encode(frame, &mut wire)
        .expect("a frame within the limit encodes");
    wire
}

/// Counts what a session sends.
#[derive(Debug)]
struct Counter(Rc<Cell<usize>>);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.set(self.0.get() + buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn segment(conv: u32, cmd: u8, sn: u32, data: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(HEADER + data.len());
    s.put_u32_le(conv);
    s.put_u8(cmd);
    s.put_u8(0); // frg
    s.put_u16_le(256); // wnd
    s.put_u32_le(0); // ts
    s.put_u32_le(sn);
    s.put_u32_le(0); // una
    s.put_u32_le(data.len() as u32);
    s.put_slice(data);
    s
}

/// Packet streams (with the close marker), and datagrams a client sends: a first data
/// segment carrying a packet, then more, an ack, a close.
pub fn seeds() -> Vec<Vec<u8>> {
    let login = encode(KcpFrame::Packet(Bytes::from_static(b"login:alice")));
    let next = encode(KcpFrame::Packet(Bytes::from_static(&[7; 40])));
    let close = CLOSE_MARKER.to_be_bytes();
    let first = segment(0, CMD_PUSH, 0, &login);
    let with_conv = segment(9, CMD_PUSH, 0, &login);
    let more = [
        segment(9, CMD_PUSH, 1, &next),
        segment(9, 82, 0, &[]),
        segment(9, CMD_PUSH, 2, &close),
    ]
    .concat();
    vec![
        [&login[..], &next, &close].concat(),
        first.clone(),
        [with_conv.clone(), more.clone()].concat(),
        [first, segment(0, CMD_PUSH, 1, &next)].concat(),
        [with_conv, segment(9, 83, 0, &[]), more].concat(),
    ]
}
