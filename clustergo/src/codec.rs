//! Frames between nodes, as a tokio-util [`Decoder`]/[`Encoder`].
//!
//! Header, big-endian, compatible with the Go seed's `ss` codec:
//!
//! ```text
//! u32 len (bytes after this field) | u8 flag | u32 to | u32 from | [u16 cmd] | body
//! flag & 0x7: 1 = protobuf message (has cmd), 2 = binary message (has cmd),
//!             3 = RPC request, 4 = RPC response,
//!             5 = keepalive (native links only: to = from = 0, empty body)
//! ```
//!
//! The length is checked against the configured maximum *before* anything is
//! allocated; a malformed frame is an error that ends the connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, FramedRead};

use crate::addr::LogicAddr;
use crate::readbuf::{self, ReadBuf};

/// Default largest frame (length field value) accepted: 4 MiB.
pub const DEFAULT_MAX_FRAME: usize = 4 * 1024 * 1024;

/// Bytes of the length field.
pub const LEN_SIZE: usize = 4;
/// Bytes of flag + to + from.
const ROUTE_SIZE: usize = 1 + 4 + 4;
/// Bytes of the cmd field of message frames.
const CMD_SIZE: usize = 2;
const KIND_MASK: u8 = 0x7;

/// What a frame carries: the low three bits of the flag byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// A protobuf message; `cmd` names its type.
    Pb = 1,
    /// A binary message; `cmd` is the application's.
    Binary = 2,
    /// An RPC request (body: [`crate::rpc::wire`]).
    RpcRequest = 3,
    /// An RPC response.
    RpcResponse = 4,
    /// A keepalive between two native nodes: a link idle for a while sends one so
    /// the remote can tell silence from a dead network. Never dispatched. The Go
    /// seed's codec does not use this value.
    Keepalive = 5,
}

impl FrameKind {
    fn from_flag(flag: u8) -> Option<Self> {
        match flag & KIND_MASK {
            1 => Some(Self::Pb),
            2 => Some(Self::Binary),
            3 => Some(Self::RpcRequest),
            4 => Some(Self::RpcResponse),
            5 => Some(Self::Keepalive),
            _ => None,
        }
    }

    /// Whether frames of this kind carry a `cmd` field.
    pub const fn has_cmd(self) -> bool {
        matches!(self, Self::Pb | Self::Binary)
    }

    fn header_len(self) -> usize {
        ROUTE_SIZE + if self.has_cmd() { CMD_SIZE } else { 0 }
    }
}

/// One frame between nodes. `body` is a slice of the read buffer: relaying a frame
/// re-writes only its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the body is.
    pub kind: FrameKind,
    /// Final destination.
    pub to: LogicAddr,
    /// Original sender.
    pub from: LogicAddr,
    /// Message type (0 for RPC frames, which carry no cmd on the wire).
    pub cmd: u16,
    /// The payload, never decoded by relays.
    pub body: Bytes,
}

impl Frame {
    /// A whole keepalive frame, as written on an idle link.
    pub(crate) const KEEPALIVE: [u8; LEN_SIZE + ROUTE_SIZE] = [
        0,
        0,
        0,
        ROUTE_SIZE as u8,
        FrameKind::Keepalive as u8,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ];

    /// The largest header, length field included.
    pub const HEADER_MAX: usize = LEN_SIZE + ROUTE_SIZE + CMD_SIZE;

    /// Bytes this frame takes on the wire, length field included.
    pub fn wire_len(&self) -> usize {
        LEN_SIZE + self.kind.header_len() + self.body.len()
    }

    /// Writes the header (length field included) for a body of `body_len` bytes.
    pub fn put_header(
        dst: &mut BytesMut,
        kind: FrameKind,
        to: LogicAddr,
        from: LogicAddr,
        cmd: u16,
        body_len: usize,
    ) {
        let len = kind.header_len() + body_len;
        dst.put_u32(len as u32);
        dst.put_u8(kind as u8);
        dst.put_u32(to.raw());
        dst.put_u32(from.raw());
        if kind.has_cmd() {
            dst.put_u16(cmd);
        }
    }

    /// The length field's value for the frame written at the start of `dst` so far.
    pub(crate) fn open_len(dst: &[u8]) -> usize {
        dst.len() - LEN_SIZE
    }

    /// Fills in the length field of the frame at the start of `dst`, whose body was
    /// written in place after a [`put_header`](Self::put_header) with `body_len` 0.
    pub(crate) fn seal(dst: &mut BytesMut) {
        let len = Self::open_len(dst) as u32;
        dst[..LEN_SIZE].copy_from_slice(&len.to_be_bytes());
    }

    /// Appends the whole frame to `dst`.
    pub fn encode_into(&self, dst: &mut BytesMut) {
        dst.reserve(self.wire_len());
        Self::put_header(
            dst,
            self.kind,
            self.to,
            self.from,
            self.cmd,
            self.body.len(),
        );
        dst.extend_from_slice(&self.body);
    }

    /// The whole frame as one buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.wire_len());
        self.encode_into(&mut buf);
        buf.freeze()
    }
}

impl Frame {
    /// Parses one whole encoded frame (as built by [`Frame::to_bytes`]) without
    /// copying its body. Used for frames that never touched a socket (self-sends).
    pub fn parse(raw: Bytes, max_frame: usize) -> Result<Frame, CodecError> {
        let mut buf = BytesMut::from(raw);
        let total = buf.len();
        match FrameCodec::new(max_frame).decode(&mut buf)? {
            Some(frame) if buf.is_empty() => Ok(frame),
            Some(_) => Err(CodecError::TrailingBytes { extra: buf.len() }),
            None => Err(CodecError::TooShort {
                len: total,
                need: total + 1,
            }),
        }
    }
}

/// Why a byte stream is not a valid frame sequence. Every variant ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The length field is over the configured limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Declared length.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// The length field is smaller than the header it must cover.
    #[error("frame length {len} is shorter than its {need}-byte header")]
    TooShort {
        /// Declared length.
        len: usize,
        /// Header bytes the kind requires.
        need: usize,
    },
    /// Bytes follow what should have been one whole frame.
    #[error("{extra} bytes after the end of the frame")]
    TrailingBytes {
        /// Bytes past the frame's end.
        extra: usize,
    },
    /// The flag byte names no known frame kind.
    #[error("unknown frame flag {0:#04x}")]
    BadFlag(u8),
    /// The connection failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Node-to-node frame codec.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_frame: usize,
}

impl FrameCodec {
    /// A codec accepting frames up to `max_frame` bytes (the length field's value).
    pub fn new(max_frame: usize) -> Self {
        Self { max_frame }
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let room = |src: &mut BytesMut, want: usize| src.reserve(want.saturating_sub(src.len()));
        let Some(whole) = self.whole(src, room)? else {
            return Ok(None);
        };
        let (to, from, cmd) = read_route(whole.kind, src);
        Ok(Some(Frame {
            kind: whole.kind,
            to,
            from,
            cmd,
            body: whole.body_of(src),
        }))
    }
}

/// A whole frame at the start of a read buffer: its kind and its length on the
/// wire (length field included).
struct Whole {
    kind: FrameKind,
    total: usize,
}

impl Whole {
    /// The header's length, length field included.
    fn header_len(&self) -> usize {
        LEN_SIZE + self.kind.header_len()
    }

    /// Takes the frame off the front of `src`: its body.
    fn body_of(&self, src: &mut BytesMut) -> Bytes {
        let mut frame = src.split_to(self.total);
        frame.advance(self.header_len());
        frame.freeze()
    }
}

impl FrameCodec {
    /// Checks the frame at the start of `src`: its kind and wire length once it is
    /// whole; else `None`, after `room(src, want)` made room for the `want` bytes
    /// needed in all (the whole frame once its length is known, its checked length
    /// field and flag until then).
    fn whole(
        &self,
        src: &mut BytesMut,
        room: impl FnOnce(&mut BytesMut, usize),
    ) -> Result<Option<Whole>, CodecError> {
        if src.len() < LEN_SIZE + 1 {
            let mut want = LEN_SIZE + 1;
            if src.len() >= LEN_SIZE {
                let len = read_len(src);
                check_len(len, self.max_frame, 1)?;
                want = want.max(LEN_SIZE + len);
            }
            room(src, want);
            return Ok(None);
        }
        let len = read_len(src);
        let flag = src[LEN_SIZE];
        let kind = FrameKind::from_flag(flag).ok_or(CodecError::BadFlag(flag))?;
        check_len(len, self.max_frame, kind.header_len())?;
        let total = LEN_SIZE + len;
        if src.len() < total {
            room(src, total);
            return Ok(None);
        }
        Ok(Some(Whole { kind, total }))
    }
}

/// `to`, `from` and `cmd` of the whole frame `wire` of `kind`.
fn read_route(kind: FrameKind, wire: &[u8]) -> (LogicAddr, LogicAddr, u16) {
    // After the length field and the flag; `whole` checked the header is there.
    let mut h = &wire[LEN_SIZE + 1..];
    let to = LogicAddr::from_raw(h.get_u32());
    let from = LogicAddr::from_raw(h.get_u32());
    let cmd = if kind.has_cmd() { h.get_u16() } else { 0 };
    (to, from, cmd)
}

/// A frame read from a link. One addressed to another node (a harbor relays it)
/// comes with its bytes as they arrived, `wire`: the header does not change on the
/// way, so the harbor forwards them as they are. A big frame's `wire` is the read
/// allocation itself, so its body is never copied (`frame.body` is then a slice of
/// it); a small one's is a copy, so that it does not keep the read buffer alive
/// while it waits in a queue (`readbuf.rs`). Frames for the node itself come
/// without: the extra reference would cost two more atomic operations per frame on
/// the read buffer's count, which the threads consuming the bodies share.
#[derive(Debug)]
pub(crate) struct Arrived {
    pub(crate) frame: Frame,
    pub(crate) wire: Option<Bytes>,
}

/// The decoder of a node link's reader: [`FrameCodec`]'s checks, each frame as
/// an [`Arrived`], with its wire bytes if it is not for `local`. It places the
/// read buffer's allocations itself ([`ReadBuf`]); build it with [`read_frames`].
#[derive(Debug)]
pub(crate) struct LinkCodec {
    codec: FrameCodec,
    local: LogicAddr,
    buf: ReadBuf,
}

/// The frames read from a node link's `rd`, decoded by a [`LinkCodec`].
pub(crate) fn read_frames<R: tokio::io::AsyncRead>(
    rd: R,
    max_frame: usize,
    local: LogicAddr,
) -> FramedRead<R, LinkCodec> {
    let codec = LinkCodec {
        codec: FrameCodec::new(max_frame),
        local,
        buf: ReadBuf::new(readbuf::FIRST),
    };
    FramedRead::with_capacity(rd, codec, readbuf::FIRST)
}

impl Decoder for LinkCodec {
    type Item = Arrived;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Arrived>, CodecError> {
        let buf = &mut self.buf;
        let Some(whole) = self
            .codec
            .whole(src, |src, want| buf.make_room(src, want))?
        else {
            return Ok(None);
        };
        let (kind, total) = (whole.kind, whole.total);
        let (to, from, cmd) = read_route(kind, src);
        let mut frame = Frame {
            kind,
            to,
            from,
            cmd,
            body: Bytes::new(),
        };
        if to == self.local || kind == FrameKind::Keepalive {
            frame.body = whole.body_of(src);
            return Ok(Some(Arrived { frame, wire: None }));
        }
        // To relay: the wire bytes, in place if they fill enough of their
        // allocation (the body a slice of them), else copied out.
        let wire = if readbuf::keep_in_place(total, self.buf.alloc()) {
            let wire = src.split_to(total).freeze();
            frame.body = wire.slice(whole.header_len()..);
            wire
        } else {
            let wire = Bytes::copy_from_slice(&src[..total]);
            frame.body = whole.body_of(src);
            wire
        };
        Ok(Some(Arrived {
            frame,
            wire: Some(wire),
        }))
    }
}

fn read_len(src: &[u8]) -> usize {
    u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize
}

fn check_len(len: usize, max: usize, need: usize) -> Result<(), CodecError> {
    if len > max {
        return Err(CodecError::TooLarge { len, max });
    }
    if len < need {
        return Err(CodecError::TooShort { len, need });
    }
    Ok(())
}

impl Encoder<&Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        let len = frame.wire_len() - LEN_SIZE;
        if len > self.max_frame {
            return Err(CodecError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        frame.encode_into(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> LogicAddr {
        s.parse().unwrap()
    }

    fn sample() -> Vec<Frame> {
        vec![
            Frame {
                kind: FrameKind::Pb,
                to: addr("1.2.3"),
                from: addr("1.1.1"),
                cmd: 7,
                body: Bytes::from_static(b"hello"),
            },
            Frame {
                kind: FrameKind::Binary,
                to: addr("2.2.2"),
                from: addr("1.255.1"),
                cmd: 65535,
                body: Bytes::new(),
            },
            Frame {
                kind: FrameKind::RpcRequest,
                to: addr("1.2.3"),
                from: addr("1.1.1"),
                cmd: 0,
                body: Bytes::from(vec![9u8; 300]),
            },
            Frame {
                kind: FrameKind::RpcResponse,
                to: addr("1.1.1"),
                from: addr("1.2.3"),
                cmd: 0,
                body: Bytes::from_static(b"r"),
            },
        ]
    }

    fn encode_all(frames: &[Frame]) -> BytesMut {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        for f in frames {
            codec.encode(f, &mut buf).unwrap();
        }
        buf
    }

    #[test]
    fn go_compatible_header() {
        let f = &sample()[0];
        let bytes = f.to_bytes();
        let want: &[u8] = &[
            0, 0, 0, 16, // len = 1 + 4 + 4 + 2 + 5
            1,  // flag: pb
            0, 4, 8, 3, // to 1.2.3 = 1<<18 | 2<<10 | 3
            0, 4, 4, 1, // from 1.1.1
            0, 7, // cmd
            b'h', b'e', b'l', b'l', b'o',
        ];
        assert_eq!(&bytes[..], want);
    }

    #[test]
    fn split_reads_at_every_boundary() {
        let frames = sample();
        let wire = encode_all(&frames);
        for split in 0..=wire.len() {
            let mut codec = FrameCodec::default();
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for chunk in [&wire[..split], &wire[split..]] {
                buf.extend_from_slice(chunk);
                while let Some(f) = codec.decode(&mut buf).unwrap() {
                    out.push(f);
                }
            }
            assert_eq!(out, frames, "split at {split}");
            assert!(buf.is_empty());
        }
        // One byte at a time.
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in wire.iter() {
            buf.extend_from_slice(&[*b]);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                out.push(f);
            }
        }
        assert_eq!(out, frames);
    }

    #[test]
    fn link_codec_keeps_each_frames_wire_bytes() {
        let frames = sample();
        let wire = encode_all(&frames);
        // sample()'s frames go to 1.2.3 (two of them), 2.2.2 and 1.1.1.
        let local = addr("1.2.3");
        for split in 0..=wire.len() {
            let mut codec = link_codec(DEFAULT_MAX_FRAME, local);
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for chunk in [&wire[..split], &wire[split..]] {
                buf.extend_from_slice(chunk);
                while let Some(a) = codec.decode(&mut buf).unwrap() {
                    out.push(a);
                }
            }
            assert_eq!(out.len(), frames.len(), "split at {split}");
            for (a, f) in out.iter().zip(&frames) {
                assert_eq!(&a.frame, f, "split at {split}");
                let Some(wire) = &a.wire else {
                    assert_eq!(f.to, local, "split at {split}: only local frames lack wire");
                    continue;
                };
                assert_ne!(f.to, local, "split at {split}");
                assert_eq!(wire, &f.to_bytes(), "split at {split}");
                assert_eq!(&wire[wire.len() - f.body.len()..], &f.body[..]);
            }
        }
        // The same checks as the public codec.
        let mut buf = BytesMut::from(&[0u8, 0, 0, 65][..]);
        assert!(matches!(
            link_codec(64, addr("1.2.3")).decode(&mut buf),
            Err(CodecError::TooLarge { len: 65, max: 64 })
        ));
    }

    fn link_codec(max_frame: usize, local: LogicAddr) -> LinkCodec {
        read_frames(&[][..], max_frame, local).into_parts().codec
    }

    /// A harbor's reader, fed big frames for itself and small ones to relay in turn:
    /// each small frame kept (queued for a stuck target) must keep only about its own
    /// length alive, not the big frame's read buffer (it kept 1 MiB each); a big
    /// frame to relay keeps its own bytes, not copied.
    #[tokio::test]
    async fn a_queued_relayed_frame_keeps_only_its_own_bytes() {
        use futures::StreamExt;
        let (local, target) = (addr("1.255.1"), addr("2.1.1"));
        let frame = |to, len| Frame {
            kind: FrameKind::Binary,
            to,
            from: addr("1.1.1"),
            cmd: 1,
            body: Bytes::from(vec![7u8; len]),
        };
        const ROUNDS: usize = 8;
        let big = 1 << 20;
        let mut sent = Vec::new();
        for i in 0..ROUNDS {
            sent.push(frame(local, big));
            sent.push(frame(target, 10 + i));
        }
        sent.push(frame(target, big));
        let wire = encode_all(&sent);
        let mut frames = read_frames(&wire[..], DEFAULT_MAX_FRAME, local);
        let mut queued = Vec::new();
        let read = async {
            while let Some(arrived) = frames.next().await {
                let arrived = arrived.unwrap();
                // Frames for the harbor are handled (dropped) at once.
                if arrived.wire.is_some() {
                    queued.push(arrived);
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), read)
            .await
            .expect("all read");
        drop(frames);
        assert_eq!(queued.len(), ROUNDS + 1);
        for (i, Arrived { frame, wire }) in queued.into_iter().enumerate() {
            let wire = wire.unwrap();
            let (len, body_at) = (wire.len(), frame.body.as_ptr());
            let in_place = wire.as_ptr_range().contains(&body_at);
            drop(frame);
            let held = wire.try_into_mut().expect("no other frame shares it");
            assert!(
                held.capacity() <= 4 * len,
                "frame {i} of {len} bytes keeps {} bytes alive",
                held.capacity()
            );
            assert_eq!(
                in_place,
                len > big,
                "frame {i}: only the big body is not copied"
            );
        }
    }

    /// Reads at most `step` bytes at a time, as a slow socket would.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl tokio::io::AsyncRead for Trickle<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let n = self.step.min(self.data.len()).min(buf.remaining());
            buf.put_slice(&self.data[..n]);
            self.data = &self.data[n..];
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Whatever the reads' sizes, a link's reader yields every frame as sent, in the
    /// read allocations it placed itself (first buffer, chunks, a big frame's own).
    #[tokio::test]
    async fn a_link_reader_yields_every_frame_whatever_the_reads() {
        use futures::StreamExt;
        let local = addr("1.2.3");
        let mut frames = sample();
        frames.push(Frame {
            body: Bytes::from(vec![5u8; 3 * readbuf::CHUNK]),
            ..sample()[1].clone()
        });
        frames.extend(sample());
        let wire = encode_all(&frames);
        for step in [1, 7, 100, readbuf::FIRST, readbuf::CHUNK + 3, wire.len()] {
            let rd = Trickle { data: &wire, step };
            let got: Vec<Frame> = read_frames(rd, DEFAULT_MAX_FRAME, local)
                .map(|a| a.unwrap().frame)
                .collect()
                .await;
            assert_eq!(got, frames, "reads of {step} bytes");
        }
    }

    #[test]
    fn oversize_rejected_before_body_arrives() {
        let mut codec = FrameCodec::new(64);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 65][..]);
        match codec.decode(&mut buf) {
            Err(CodecError::TooLarge { len: 65, max: 64 }) => {}
            other => panic!("want TooLarge, got {other:?}"),
        }
        // The limit is on the declared length, so a huge claim costs no allocation.
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff, 1][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::TooLarge { .. })
        ));
        assert!(buf.capacity() < 1024);
        // Encoding refuses too.
        let big = Frame {
            body: Bytes::from(vec![0u8; 100]),
            ..sample()[0].clone()
        };
        assert!(codec.encode(&big, &mut BytesMut::new()).is_err());
    }

    #[test]
    fn zero_and_short_lengths() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::TooShort { len: 0, .. })
        ));
        // A pb frame needs flag+to+from+cmd = 11 bytes.
        let mut buf = BytesMut::from(&[0u8, 0, 0, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::TooShort { len: 9, need: 11 })
        ));
        // An RPC frame has no cmd: 9 bytes is a valid empty body.
        let mut buf = BytesMut::from(&[0u8, 0, 0, 9, 3, 0, 0, 0, 1, 0, 0, 0, 2][..]);
        let f = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(f.kind, FrameKind::RpcRequest);
        assert!(f.body.is_empty());
    }

    #[test]
    fn keepalive_frame_decodes() {
        let mut buf = BytesMut::from(&Frame::KEEPALIVE[..]);
        let f = FrameCodec::default().decode(&mut buf).unwrap().unwrap();
        assert_eq!(f.kind, FrameKind::Keepalive);
        assert!(f.body.is_empty() && buf.is_empty());
    }

    #[test]
    fn parse_takes_exactly_one_frame() {
        for f in sample() {
            let bytes = f.to_bytes();
            assert_eq!(Frame::parse(bytes.clone(), DEFAULT_MAX_FRAME).unwrap(), f);
            let mut long = BytesMut::from(&bytes[..]);
            long.extend_from_slice(&[0, 0, 0]);
            assert!(matches!(
                Frame::parse(long.freeze(), DEFAULT_MAX_FRAME),
                Err(CodecError::TrailingBytes { extra: 3 })
            ));
            assert!(matches!(
                Frame::parse(bytes.slice(..bytes.len() - 1), DEFAULT_MAX_FRAME),
                Err(CodecError::TooShort { .. })
            ));
        }
    }

    #[test]
    fn seal_fills_in_the_length_of_a_body_written_in_place() {
        let f = &sample()[2];
        let mut buf = BytesMut::new();
        Frame::put_header(&mut buf, f.kind, f.to, f.from, f.cmd, 0);
        buf.extend_from_slice(&f.body);
        assert_eq!(Frame::open_len(&buf), f.wire_len() - LEN_SIZE);
        Frame::seal(&mut buf);
        assert_eq!(buf.freeze(), f.to_bytes());
    }

    #[test]
    fn bad_flag() {
        for flag in [0u8, 6, 7, 0x80] {
            let mut codec = FrameCodec::default();
            let mut buf = BytesMut::from(&[0u8, 0, 0, 9, flag, 0, 0, 0, 0, 0, 0, 0, 0][..]);
            assert!(
                matches!(codec.decode(&mut buf), Err(CodecError::BadFlag(f)) if f == flag),
                "flag {flag}"
            );
        }
    }
}
