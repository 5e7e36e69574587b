//! Frames inside one streaming call's node stream: the one place that knows their
//! layout. The stream starts with the node stream's kind byte (`stream.rs`), then:
//!
//! ```text
//! frame:   u32 len | u8 kind | body          (len counts kind and body)
//! kind 1   open:    a request body (`wire.rs` layout: seq 0, argument empty)
//! kind 2   message: one encoded message
//! kind 3   end:     a response body (`wire.rs` layout: seq 0, code, text, no result)
//! ```
//!
//! The caller sends `open`, its messages, then `end` (code 0); the server sends its
//! messages, then `end` carrying the call's status. Lengths are checked against the
//! bound before anything is allocated, so a peer cannot make us buffer more.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::RpcError;
use super::wire::{self, RequestHead, Response};
use crate::addr::LogicAddr;

const OPEN: u8 = 1;
const MESSAGE: u8 = 2;
const END: u8 = 3;

/// One frame of a streaming call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamFrame {
    /// The call's request head (read with `wire::RequestView`).
    Open(Bytes),
    /// One message.
    Message(Bytes),
    /// One direction ended, with this status (`Ok` or the call's error).
    End(Result<(), RpcError>),
}

/// Appends an `open` frame.
pub(crate) fn put_open(dst: &mut BytesMut, head: &RequestHead<'_>) {
    put_frame(dst, OPEN, |d| wire::put_request_head(d, head));
}

/// Appends a `message` frame.
pub(crate) fn put_message(dst: &mut BytesMut, msg: &[u8]) {
    put_frame(dst, MESSAGE, |d| d.put_slice(msg));
}

/// Appends an `end` frame carrying `status`, its error text cut so the frame's
/// body stays within `max` (the node's `max_frame`).
pub(crate) fn put_end(dst: &mut BytesMut, status: &Result<(), RpcError>, max: usize) {
    put_frame(dst, END, |d| {
        wire::put_status(d, status.as_ref().err(), max)
    });
}

/// Appends `frame` as it was read (an `open` frame's body as is).
#[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
pub(crate) fn put(dst: &mut BytesMut, frame: &StreamFrame) {
    match frame {
        StreamFrame::Open(body) => put_frame(dst, OPEN, |d| d.put_slice(body)),
        StreamFrame::Message(msg) => put_message(dst, msg),
        StreamFrame::End(status) => put_end(dst, status, usize::MAX),
    }
}

/// Appends a `message` frame whose body `encode` writes in place; its body's
/// length. On error nothing is appended.
pub(crate) fn put_message_with<E>(
    dst: &mut BytesMut,
    encode: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<usize, E> {
    try_put_frame(dst, MESSAGE, encode)
}

fn put_frame(dst: &mut BytesMut, kind: u8, body: impl FnOnce(&mut BytesMut)) {
    let Ok(_) = try_put_frame::<std::convert::Infallible>(dst, kind, |d| {
        body(d);
        Ok(())
    });
}

/// Appends a frame whose body `body` writes. If it fails, or panics (a user's
/// codec, writing into a buffer other frames share), the frame is taken back.
fn try_put_frame<E>(
    dst: &mut BytesMut,
    kind: u8,
    body: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<usize, E> {
    let mut frame = Partial {
        at: dst.len(),
        dst,
        done: false,
    };
    frame.dst.put_u32(0);
    frame.dst.put_u8(kind);
    body(frame.dst)?;
    frame.done = true;
    let (dst, at) = (&mut *frame.dst, frame.at);
    let len = dst.len() - at - 4;
    dst[at..at + 4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(len - 1)
}

/// A frame being appended: cut off again unless `done`.
struct Partial<'a> {
    dst: &'a mut BytesMut,
    at: usize,
    done: bool,
}

impl Drop for Partial<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.dst.truncate(self.at);
        }
    }
}

/// Decodes frames of at most `max` body bytes (the node's `max_frame`); `peer`
/// names the other end in the errors an `end` frame carries.
#[derive(Debug)]
pub(crate) struct StreamFrameCodec {
    max: usize,
    peer: LogicAddr,
}

impl StreamFrameCodec {
    pub(crate) fn new(max: usize, peer: LogicAddr) -> Self {
        Self { max, peer }
    }
}

/// A malformed or oversize frame: the stream is ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamFrameError {
    /// The stream's bytes could not be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A frame breaks the layout or the bound.
    #[error("streaming call: {0}")]
    Malformed(String),
}

impl Decoder for StreamFrameCodec {
    type Item = StreamFrame;
    type Error = StreamFrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<StreamFrame>, StreamFrameError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len == 0 {
            return Err(StreamFrameError::Malformed("empty frame".into()));
        }
        // Checked before reserving: the bound holds whatever the peer claims.
        if len - 1 > self.max {
            return Err(StreamFrameError::Malformed(format!(
                "frame of {} bytes exceeds the limit of {}",
                len - 1,
                self.max
            )));
        }
        if src.len() < 4 + len {
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        let kind = src.get_u8();
        let body = src.split_to(len - 1).freeze();
        match kind {
            OPEN => Ok(Some(StreamFrame::Open(body))),
            MESSAGE => Ok(Some(StreamFrame::Message(body))),
            END => {
                let r = Response::decode(body)
                    .map_err(|e| StreamFrameError::Malformed(e.to_string()))?;
                Ok(Some(StreamFrame::End(if r.code == 0 {
                    Ok(())
                } else {
                    Err(RpcError::from_wire(r.code, r.text, self.peer))
                })))
            }
            k => Err(StreamFrameError::Malformed(format!(
                "unknown frame kind {k}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::wire::RequestView;

    fn peer() -> LogicAddr {
        "1.1.1".parse().unwrap()
    }

    fn all(mut buf: BytesMut, max: usize) -> Result<Vec<StreamFrame>, String> {
        let mut codec = StreamFrameCodec::new(max, peer());
        let mut out = Vec::new();
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => return Ok(out),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    #[test]
    fn frames_round_trip_at_every_split() {
        let mut buf = BytesMut::new();
        let head = RequestHead::new(0, false, 250, "svc.Watch", b"m").unwrap();
        put_open(&mut buf, &head);
        put_message(&mut buf, b"hello");
        put_message(&mut buf, b"");
        put_end(&mut buf, &Err(RpcError::Method("no".into())), 64);
        put_end(&mut buf, &Ok(()), 64);
        let whole = buf.clone();
        let frames = all(buf, 64).unwrap();
        assert_eq!(frames.len(), 5);
        let StreamFrame::Open(open) = &frames[0] else {
            panic!("{frames:?}")
        };
        let view = RequestView::parse(open).unwrap();
        assert_eq!(
            (view.method, view.timeout_ms, &view.meta[..]),
            ("svc.Watch", 250, &b"m"[..])
        );
        assert!(view.arg.is_empty());
        assert_eq!(
            frames[1],
            StreamFrame::Message(Bytes::from_static(b"hello"))
        );
        assert_eq!(frames[2], StreamFrame::Message(Bytes::new()));
        assert_eq!(
            frames[3],
            StreamFrame::End(Err(RpcError::Method("no".into())))
        );
        assert_eq!(frames[4], StreamFrame::End(Ok(())));
        // Fed one split at a time, the same frames come out.
        for at in 0..whole.len() {
            let mut codec = StreamFrameCodec::new(64, peer());
            let mut buf = BytesMut::from(&whole[..at]);
            let mut got = Vec::new();
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                got.push(f);
            }
            buf.extend_from_slice(&whole[at..]);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                got.push(f);
            }
            assert_eq!(got, frames, "split at {at}");
        }
    }

    #[test]
    fn a_failing_or_panicking_encoder_leaves_no_partial_frame() {
        let mut buf = BytesMut::new();
        put_message(&mut buf, b"kept");
        let failed = put_message_with(&mut buf, |b| {
            b.put_slice(b"half");
            Err("no")
        });
        assert_eq!(failed, Err("no"));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = put_message_with(&mut buf, |b| -> Result<(), ()> {
                b.put_slice(b"half");
                panic!("encoder bug")
            });
        }));
        assert!(panicked.is_err());
        assert_eq!(
            all(buf, 64).unwrap(),
            vec![StreamFrame::Message(Bytes::from_static(b"kept"))]
        );
    }

    #[test]
    fn end_text_is_cut_to_the_frame_limit() {
        // (text, limit, text that arrives): 18 bytes of the body are not text.
        let cases: &[(&str, usize, &str)] = &[
            ("short", 64, "short"),
            ("abcdef", 22, "abcd"),
            ("ééé", 23, "éé"),
            ("ééé", 21, "é"),
            ("abc", 18, ""),
        ];
        for (text, max, want) in cases {
            let mut buf = BytesMut::new();
            put_end(&mut buf, &Err(RpcError::Method((*text).into())), *max);
            assert!(buf.len() - 5 <= *max, "{text:?} at {max}");
            let frames = all(buf, *max).unwrap();
            assert_eq!(
                frames,
                vec![StreamFrame::End(Err(RpcError::Method((*want).into())))],
                "{text:?} at {max}"
            );
        }
    }

    #[test]
    fn malformed_frames_are_errors() {
        let cases: &[(&[u8], &str)] = &[
            (b"\x00\x00\x00\x00", "empty frame"),
            (b"\x00\x00\x00\x06\x02abcde", "exceeds the limit of 4"),
            (b"\xff\xff\xff\xff", "exceeds the limit"),
            (b"\x00\x00\x00\x01\x09", "unknown frame kind 9"),
            (b"\x00\x00\x00\x02\x03\x00", "truncated"),
        ];
        for (raw, want) in cases {
            let err = all(BytesMut::from(*raw), 4).unwrap_err();
            assert!(err.contains(want), "{raw:?}: {err}");
        }
        // A frame at the bound is fine, and a partial one waits.
        assert_eq!(
            all(BytesMut::from(&b"\x00\x00\x00\x05\x02abcd"[..]), 4).unwrap(),
            vec![StreamFrame::Message(Bytes::from_static(b"abcd"))]
        );
        assert_eq!(
            all(BytesMut::from(&b"\x00\x00\x00\x05\x02ab"[..]), 4).unwrap(),
            vec![]
        );
    }
}
