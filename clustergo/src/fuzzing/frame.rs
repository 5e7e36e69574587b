//! The node-to-node frame codec ([`crate::codec`]), fed as a byte stream.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Encoder;

use super::{Target, feed_split};
use crate::addr::LogicAddr;
use crate::codec::{Frame, FrameCodec, FrameKind, LEN_SIZE};

/// The frame codec target.
pub const TARGET: Target = Target {
    name: "frame",
    run,
    seeds,
};

/// A limit small enough that inputs reach it: a declared length over it must fail
/// before anything is reserved.
const MAX_FRAME: usize = 1024;

/// Decodes `data` as a stream of frames (whole and split), re-encodes every frame and
/// decodes it again, and checks [`Frame::parse`] agrees on a single frame.
pub fn run(data: &[u8]) {
    let decoded = feed_split(|| FrameCodec::new(MAX_FRAME), data, LEN_SIZE + MAX_FRAME);
    let mut consumed = 0;
    for frame in &decoded.items {
        assert!(
            frame.wire_len() - LEN_SIZE <= MAX_FRAME,
            "{frame:?} over the limit"
        );
        consumed += frame.wire_len();
        let mut wire = BytesMut::new();
        FrameCodec::new(MAX_FRAME)
            .encode(frame, &mut wire)
            .expect("a decoded frame re-encodes");
        assert_eq!(wire.len(), frame.wire_len());
        let again = Frame::parse(wire.freeze(), MAX_FRAME).expect("a re-encoded frame parses");
        assert_eq!(&again, frame);
    }
    assert!(consumed <= data.len());
    if let Ok(frame) = Frame::parse(Bytes::copy_from_slice(data), MAX_FRAME) {
        assert!(!decoded.failed);
        assert_eq!(decoded.items, [frame]);
    }
}

/// Real frames of every kind, alone and back to back.
pub fn seeds() -> Vec<Vec<u8>> {
    let addr = |s: &str| s.parse::<LogicAddr>().expect("valid address");
    let frames = [
        (FrameKind::Pb, 7, &b"hello"[..]),
        (FrameKind::Binary, 65535, &b""[..]),
        (FrameKind::RpcRequest, 0, &[9u8; 300][..]),
        (FrameKind::RpcResponse, 0, &b"r"[..]),
    ]
    .map(|(kind, cmd, body)| {
        Frame {
            kind,
            to: addr("1.2.3"),
            from: addr("1.1.1"),
            cmd,
            body: Bytes::copy_from_slice(body),
        }
        .to_bytes()
        .to_vec()
    });
    let mut seeds = frames.to_vec();
    seeds.push(frames.concat());
    seeds
}
