//! The frames inside a streaming call's stream ([`crate::rpc`]'s `stream_frame`),
//! fed as a byte stream.

use bytes::BytesMut;

use super::{Target, feed_split};
use crate::addr::LogicAddr;
use crate::rpc::RpcError;
use crate::rpc::stream_frame::{self, StreamFrame, StreamFrameCodec};
use crate::rpc::wire::{RequestHead, RequestView};

/// The streaming-call frame target.
pub const TARGET: Target = Target {
    name: "rpc_stream",
    run,
    seeds,
};

/// A limit small enough that inputs reach it.
const MAX: usize = 1024;

fn peer() -> LogicAddr {
    LogicAddr::new(1, 1, 1).expect("valid address")
}

/// Decodes `data` as a stream of frames (whole and split), checks each is within the
/// bound, reads an `open` frame's head, and re-encodes every frame and decodes it
/// back to the same value.
pub fn run(data: &[u8]) {
    let codec = || StreamFrameCodec::new(MAX, peer());
    let decoded = feed_split(codec, data, 4 + 1 + MAX);
    for frame in &decoded.items {
        match frame {
            StreamFrame::Open(body) => {
                assert!(body.len() <= MAX);
                let _ = RequestView::parse(body);
            }
            StreamFrame::Message(msg) => assert!(msg.len() <= MAX),
            StreamFrame::End(_) => {}
        }
        let mut wire = BytesMut::new();
        stream_frame::put(&mut wire, frame);
        let again = feed_split(codec, &wire, 4 + 1 + MAX + wire.len());
        assert!(!again.failed, "{frame:?} does not decode after encoding");
        assert_eq!(&again.items, std::slice::from_ref(frame));
    }
}

/// Every kind of frame, alone and back to back.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let head = RequestHead::new(
        0,
        false,
        250,
        "game.room.Feed.Follow",
        b"\x00\x00\x00\x00\x01a",
    )
    .expect("short method");
    let mut b = BytesMut::new();
    stream_frame::put_open(&mut b, &head);
    frames.push(b.to_vec());
    for msg in [&b""[..], &b"hello"[..], &[7u8; 300][..]] {
        let mut b = BytesMut::new();
        stream_frame::put_message(&mut b, msg);
        frames.push(b.to_vec());
    }
    for status in [
        Ok(()),
        Err(RpcError::Method("no".into())),
        Err(RpcError::Disconnected(peer())),
        Err(RpcError::Timeout),
    ] {
        let mut b = BytesMut::new();
        stream_frame::put_end(&mut b, &status, usize::MAX);
        frames.push(b.to_vec());
    }
    let all = frames.concat();
    frames.push(all);
    frames
}
