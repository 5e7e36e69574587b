//! smux v1 frames (`gocompat::smux`), fed as a byte stream.

use bytes::{Bytes, BytesMut};

use super::{Target, feed_round_trip};
use crate::gocompat::smux::{Cmd, HEADER, SmuxCodec, SmuxFrame};

/// The smux frame target.
pub const TARGET: Target = Target {
    name: "smux",
    run,
    seeds,
};

/// Decodes `data` as smux frames (whole and split); each re-encodes to bytes that
/// decode to it alone. The buffer never holds more than one largest frame.
pub fn run(data: &[u8]) {
    let _ = feed_round_trip(
        || SmuxCodec,
        data,
        HEADER + u16::MAX as usize,
        |f| {
            let mut b = BytesMut::new();
            f.encode_into(&mut b)
                .expect("a decoded frame's data came in a u16 length");
            b
        },
    );
}

/// The captured SYN 3, PSH 3 "ping", FIN 3, alone and back to back, and a NOP.
pub fn seeds() -> Vec<Vec<u8>> {
    let frames = [
        (Cmd::Syn, &b""[..]),
        (Cmd::Psh, &b"ping"[..]),
        (Cmd::Fin, &b""[..]),
        (Cmd::Nop, &b""[..]),
    ]
    .map(|(cmd, data)| {
        let mut b = BytesMut::new();
        SmuxFrame {
            cmd,
            sid: if cmd == Cmd::Nop { 0 } else { 3 },
            data: Bytes::copy_from_slice(data),
        }
        .encode_into(&mut b)
        .expect("seed data is short");
        b.to_vec()
    });
    let mut seeds = frames.to_vec();
    seeds.push(frames.concat());
    seeds
}
