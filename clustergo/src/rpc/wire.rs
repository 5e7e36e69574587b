//! RPC bodies carried in frames of kind 3 (request) and 4 (response): the one place
//! that knows their layout. The node's send paths write whole frames with
//! `request_frame` and `ResponseFrame`, straight into the outgoing buffer;
//! the receive paths read them with `RequestView` and [`Response::decode`].
//!
//! ```text
//! request:  u64 seq | u8 flags (bit 0: one-way) | u32 timeout_ms (0: none)
//!           | u16 method_len | method | u32 meta_len | meta | u32 arg_len | arg
//! response: u64 seq | u16 code (0: ok) | u32 text_len | text | u32 ret_len | ret
//! ```
//!
//! The deadline travels as time *remaining* when the request was sent, so clocks need
//! not agree; a server skips a request whose time ran out while it was queued. `meta`
//! is a list of keyed records (interceptors' bytes, trace context), laid out by
//! `rpc/meta.rs`; this layer carries it as bytes.
//!
//! A node in the Go seed's dialect lays its bodies out as rpcgo does instead
//! (`Form::GoSeed`, `gocompat/rpc.rs`): the same entry points take the node's
//! `Form` and branch once, here.

use std::convert::Infallible;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::RpcError;
use crate::addr::LogicAddr;
use crate::codec::{Frame, FrameKind};

const ONE_WAY: u8 = 1;
/// Bytes of a request's fixed fields: seq, flags, timeout, and the three lengths.
const REQUEST_FIXED: usize = 8 + 1 + 4 + 2 + 4 + 4;
/// Bytes of a response's fixed fields: seq, code, and the two lengths.
const RESPONSE_FIXED: usize = 8 + 2 + 4 + 4;

/// Which layout RPC bodies have: the node's dialect decides (`node/dialect.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Form {
    /// This crate's layout (above).
    #[default]
    Native,
    /// rpcgo's: u16 lengths, userdata for meta, no timeout.
    #[cfg(feature = "go-compat")]
    GoSeed,
}

/// A request body is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed rpc {what}: {why}")]
pub struct WireError {
    what: &'static str,
    why: &'static str,
}

/// An RPC request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Caller's sequence number, echoed in the response.
    pub seq: u64,
    /// No response wanted.
    pub one_way: bool,
    /// Milliseconds the caller will still wait (0: no deadline).
    pub timeout_ms: u32,
    /// Method name.
    pub method: String,
    /// Opaque caller metadata.
    pub meta: Bytes,
    /// Encoded argument.
    pub arg: Bytes,
}

/// An RPC response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The request's sequence number.
    pub seq: u64,
    /// 0 for success, else an [`super::ErrorCode`].
    pub code: u16,
    /// Error text (empty on success).
    pub text: String,
    /// Encoded result (empty on error).
    pub ret: Bytes,
}

impl Request {
    fn head(&self) -> RequestHead<'_> {
        RequestHead {
            seq: self.seq,
            one_way: self.one_way,
            timeout_ms: self.timeout_ms,
            method: &self.method,
            meta: &self.meta,
        }
    }

    /// Bytes the encoded body takes.
    pub fn encoded_len(&self) -> usize {
        self.head().len_before_arg() + self.arg.len()
    }

    /// Appends the body to `dst` (with the same writer the node sends with).
    pub fn encode(&self, dst: &mut BytesMut) {
        let Ok(()) = put_request(dst, &self.head(), |d| {
            d.put_slice(&self.arg);
            Ok::<_, Infallible>(())
        });
    }

    /// Parses a body. `arg` and `meta` are slices of `src`, not copies.
    pub fn decode(src: Bytes) -> Result<Self, WireError> {
        let view = RequestView::parse(&src)?;
        Ok(Self {
            seq: view.seq,
            one_way: view.one_way,
            timeout_ms: view.timeout_ms,
            method: view.method.to_owned(),
            meta: view.meta,
            arg: view.arg,
        })
    }
}

/// A request read in place: the method borrows the body, meta and argument are
/// slices of it. The server's receive path uses this to avoid copying.
#[derive(Debug)]
pub(crate) struct RequestView<'a> {
    pub(crate) seq: u64,
    pub(crate) one_way: bool,
    pub(crate) timeout_ms: u32,
    pub(crate) method: &'a str,
    pub(crate) meta: Bytes,
    pub(crate) arg: Bytes,
}

impl<'a> RequestView<'a> {
    /// Parses a body of layout `form`.
    pub(crate) fn parse_as(form: Form, body: &'a Bytes) -> Result<Self, WireError> {
        match form {
            Form::Native => Self::parse(body),
            #[cfg(feature = "go-compat")]
            Form::GoSeed => {
                let go =
                    crate::gocompat::rpc::RequestParts::parse(body).map_err(|_| WireError {
                        what: "request",
                        why: "not an rpcgo request",
                    })?;
                // The Go caller's userdata is what native callers' interceptors send.
                let meta = if go.userdata.is_empty() {
                    Bytes::new()
                } else {
                    let mut m = Vec::with_capacity(5 + go.userdata.len());
                    super::meta::put(&mut m, super::meta::APP, &go.userdata);
                    m.into()
                };
                Ok(Self {
                    seq: go.seq,
                    one_way: go.one_way,
                    timeout_ms: 0,
                    method: go.method,
                    meta,
                    arg: go.arg,
                })
            }
        }
    }

    /// Parses a body of the native layout.
    pub(crate) fn parse(body: &'a Bytes) -> Result<Self, WireError> {
        let err = |why| WireError {
            what: "request",
            why,
        };
        let mut b = &body[..];
        if b.len() < 8 + 1 + 4 + 2 {
            return Err(err("truncated header"));
        }
        let seq = b.get_u64();
        let flags = b.get_u8();
        let timeout_ms = b.get_u32();
        let method_len = b.get_u16() as usize;
        if b.len() < method_len {
            return Err(err("truncated method"));
        }
        let method =
            std::str::from_utf8(&b[..method_len]).map_err(|_| err("method is not utf-8"))?;
        let mut rest = body.slice(body.len() - b.len() + method_len..);
        let meta = take_sized(&mut rest).ok_or_else(|| err("truncated meta"))?;
        let arg = take_sized(&mut rest).ok_or_else(|| err("truncated argument"))?;
        if !rest.is_empty() {
            return Err(err("trailing bytes"));
        }
        Ok(Self {
            seq,
            one_way: flags & ONE_WAY != 0,
            timeout_ms,
            method,
            meta,
            arg,
        })
    }
}

/// A request's fields before its argument, as the sender fills them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestHead<'a> {
    seq: u64,
    one_way: bool,
    timeout_ms: u32,
    method: &'a str,
    meta: &'a [u8],
}

impl<'a> RequestHead<'a> {
    /// A head, or `None` if `method` is too long for its length field.
    pub(crate) fn new(
        seq: u64,
        one_way: bool,
        timeout_ms: u32,
        method: &'a str,
        meta: &'a [u8],
    ) -> Option<Self> {
        (method.len() <= u16::MAX as usize).then_some(Self {
            seq,
            one_way,
            timeout_ms,
            method,
            meta,
        })
    }

    /// Bytes of the body before the argument.
    fn len_before_arg(&self) -> usize {
        REQUEST_FIXED + self.method.len() + self.meta.len()
    }
}

/// Appends a request body to `dst`; `put_arg` writes the argument in place and its
/// length is filled in afterwards, so the argument is never copied.
fn put_request<E>(
    dst: &mut BytesMut,
    head: &RequestHead<'_>,
    put_arg: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<(), E> {
    dst.put_u64(head.seq);
    dst.put_u8(if head.one_way { ONE_WAY } else { 0 });
    dst.put_u32(head.timeout_ms);
    dst.put_u16(head.method.len() as u16);
    dst.put_slice(head.method.as_bytes());
    dst.put_u32(head.meta.len() as u32);
    dst.put_slice(head.meta);
    put_sized(dst, put_arg)
}

/// A whole request frame from `from` to `to`, header and body in one buffer, the
/// argument written in place by `put_arg` (the node's send path).
/// In `Form::GoSeed`, `meta` is sent as rpcgo's userdata.
pub(crate) fn request_frame<E>(
    form: Form,
    to: LogicAddr,
    from: LogicAddr,
    head: &RequestHead<'_>,
    put_arg: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<Bytes, E> {
    let mut buf = crate::framebuf::take(Frame::HEADER_MAX + head.len_before_arg() + 64);
    Frame::put_header(&mut buf, FrameKind::RpcRequest, to, from, 0, 0);
    match form {
        Form::Native => put_request(&mut buf, head, put_arg)?,
        #[cfg(feature = "go-compat")]
        Form::GoSeed => crate::gocompat::rpc::put_request(
            &mut buf,
            head.seq,
            head.one_way,
            head.method,
            head.meta,
            put_arg,
        )?,
    }
    Frame::seal(&mut buf);
    Ok(crate::framebuf::finish(buf))
}

/// Appends a request body with an empty argument: the opening of a streaming call
/// (`rpc/stream_frame.rs`), whose messages follow in frames of their own.
pub(crate) fn put_request_head(dst: &mut BytesMut, head: &RequestHead<'_>) {
    let Ok(()) = put_request(dst, head, |_| Ok::<_, Infallible>(()));
}

/// Appends a response body with sequence number 0 and no result: the status that
/// ends one direction of a streaming call. Its text is cut so the body stays within
/// `max`, as [`ResponseFrame::put_error`] cuts a reply's: the caller learns the
/// error instead of refusing an oversize frame.
pub(crate) fn put_status(dst: &mut BytesMut, err: Option<&RpcError>, max: usize) {
    match err {
        None => put_error_response(dst, 0, 0, ""),
        Some(e) => {
            let mut text = e.wire_text();
            cut_text(&mut text, max.saturating_sub(RESPONSE_FIXED));
            put_error_response(dst, 0, e.code() as u16, &text);
        }
    }
}

/// Cuts `text` to at most `len` bytes, at a character boundary.
fn cut_text(text: &mut String, len: usize) {
    if text.len() <= len {
        return;
    }
    let mut keep = len;
    while !text.is_char_boundary(keep) {
        keep -= 1;
    }
    text.truncate(keep);
}

/// A response frame being written (the server's reply path): the header first,
/// then a result or an error, then [`finish`](Self::finish) fills in the length.
#[derive(Debug)]
pub(crate) struct ResponseFrame {
    form: Form,
    buf: BytesMut,
    header: usize,
}

impl ResponseFrame {
    /// Starts a response frame of layout `form` from `from` to `to`.
    pub(crate) fn new(form: Form, to: LogicAddr, from: LogicAddr) -> Self {
        let mut buf = crate::framebuf::take(128);
        Frame::put_header(&mut buf, FrameKind::RpcResponse, to, from, 0, 0);
        let header = buf.len();
        Self { form, buf, header }
    }

    /// Writes a success answering `seq`, the result written in place by `put_ret`.
    /// Returns the frame's length so far (its length field's value).
    pub(crate) fn put_ok<E>(
        &mut self,
        seq: u64,
        put_ret: impl FnOnce(&mut BytesMut) -> Result<(), E>,
    ) -> Result<usize, E> {
        match self.form {
            Form::Native => put_response(&mut self.buf, seq, 0, "", put_ret)?,
            #[cfg(feature = "go-compat")]
            Form::GoSeed => crate::gocompat::rpc::put_response(&mut self.buf, seq, 0, "", put_ret)?,
        }
        Ok(Frame::open_len(&self.buf))
    }

    /// Writes `err` answering `seq`, replacing any body written before. Its text is
    /// cut (at a character boundary) so the frame stays within `max`, the frame
    /// limit: an oversize reply would be refused on send, and the caller would wait
    /// for its timeout instead of learning the error (4092 bytes in the Go dialect).
    pub(crate) fn put_error(&mut self, seq: u64, err: &RpcError, max: usize) {
        let (code, mut text) = match self.form {
            Form::Native => (err.code() as u16, err.wire_text()),
            #[cfg(feature = "go-compat")]
            Form::GoSeed => crate::gocompat::rpc::go_code(err),
        };
        loop {
            self.buf.truncate(self.header);
            match self.form {
                Form::Native => put_error_response(&mut self.buf, seq, code, &text),
                #[cfg(feature = "go-compat")]
                Form::GoSeed => {
                    let Ok(()) =
                        crate::gocompat::rpc::put_response(&mut self.buf, seq, code, &text, |_| {
                            Ok::<_, Infallible>(())
                        });
                }
            }
            let over = Frame::open_len(&self.buf).saturating_sub(max);
            if over == 0 || text.is_empty() {
                return;
            }
            let keep = text.len().saturating_sub(over);
            cut_text(&mut text, keep);
        }
    }

    /// The finished frame.
    pub(crate) fn finish(mut self) -> Bytes {
        Frame::seal(&mut self.buf);
        crate::framebuf::finish(self.buf)
    }
}

/// Appends a response body to `dst`, the result written in place by `put_ret`.
fn put_response<E>(
    dst: &mut BytesMut,
    seq: u64,
    code: u16,
    text: &str,
    put_ret: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<(), E> {
    dst.put_u64(seq);
    dst.put_u16(code);
    dst.put_u32(text.len() as u32);
    dst.put_slice(text.as_bytes());
    put_sized(dst, put_ret)
}

/// Appends an error response body (no result) to `dst`.
fn put_error_response(dst: &mut BytesMut, seq: u64, code: u16, text: &str) {
    let Ok(()) = put_response(dst, seq, code, text, |_| Ok::<_, Infallible>(()));
}

/// Appends a `u32` length and the bytes `put` writes after it, filling in the
/// length once they are written.
fn put_sized<E>(
    dst: &mut BytesMut,
    put: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<(), E> {
    let at = dst.len();
    dst.put_u32(0);
    put(dst)?;
    let len = (dst.len() - at - 4) as u32;
    dst[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

impl Response {
    /// Bytes the encoded body takes.
    pub fn encoded_len(&self) -> usize {
        RESPONSE_FIXED + self.text.len() + self.ret.len()
    }

    /// Appends the body to `dst` (with the same writer the node replies with).
    pub fn encode(&self, dst: &mut BytesMut) {
        let Ok(()) = put_response(dst, self.seq, self.code, &self.text, |d| {
            d.put_slice(&self.ret);
            Ok::<_, Infallible>(())
        });
    }

    /// Parses a body of layout `form`.
    pub(crate) fn decode_as(form: Form, src: Bytes) -> Result<Self, WireError> {
        match form {
            Form::Native => Self::decode(src),
            #[cfg(feature = "go-compat")]
            Form::GoSeed => {
                let go = crate::gocompat::GoResponse::decode(src).map_err(|_| WireError {
                    what: "response",
                    why: "not an rpcgo response",
                })?;
                Ok(Self {
                    seq: go.seq,
                    code: go.code,
                    text: go.text,
                    ret: go.ret,
                })
            }
        }
    }

    /// Parses a body; `ret` is a slice of `src`.
    pub fn decode(mut src: Bytes) -> Result<Self, WireError> {
        let err = |why| WireError {
            what: "response",
            why,
        };
        if src.len() < 8 + 2 {
            return Err(err("truncated header"));
        }
        let seq = src.get_u64();
        let code = src.get_u16();
        let text = take_sized(&mut src).ok_or_else(|| err("truncated text"))?;
        let text = String::from_utf8_lossy(&text).into_owned();
        let ret = take_sized(&mut src).ok_or_else(|| err("truncated result"))?;
        if !src.is_empty() {
            return Err(err("trailing bytes"));
        }
        Ok(Self {
            seq,
            code,
            text,
            ret,
        })
    }
}

fn take_sized(src: &mut Bytes) -> Option<Bytes> {
    if src.len() < 4 {
        return None;
    }
    let len = src.get_u32() as usize;
    (src.len() >= len).then(|| src.split_to(len))
}

#[cfg(test)]
mod tests {
    use super::super::ErrorCode;
    use super::*;
    use crate::codec::{DEFAULT_MAX_FRAME, LEN_SIZE};

    fn addr(s: &str) -> LogicAddr {
        s.parse().unwrap()
    }

    /// Parses a frame the node built, checking its header, and returns its body.
    fn body_of(frame: Bytes, kind: FrameKind) -> Bytes {
        let f = Frame::parse(frame, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!((f.kind, f.to, f.from), (kind, addr("1.2.3"), addr("1.1.1")));
        f.body
    }

    #[test]
    fn request_frame_round_trip_and_truncation() {
        let req = Request {
            seq: 42,
            one_way: true,
            timeout_ms: 150,
            method: "echo".into(),
            meta: Bytes::from_static(b"trace"),
            arg: Bytes::from(vec![7u8; 70_000]),
        };
        let head = RequestHead::new(42, true, 150, "echo", b"trace").unwrap();
        let frame = request_frame(Form::Native, addr("1.2.3"), addr("1.1.1"), &head, |buf| {
            buf.put_slice(&req.arg);
            Ok::<_, Infallible>(())
        });
        let Ok(frame) = frame;
        let body = body_of(frame, FrameKind::RpcRequest);
        assert_eq!(body.len(), req.encoded_len());
        let view = RequestView::parse(&body).unwrap();
        assert_eq!(
            (view.seq, view.one_way, view.timeout_ms, view.method),
            (42, true, 150, "echo")
        );
        assert_eq!(
            (&view.meta[..], &view.arg[..]),
            (&b"trace"[..], &req.arg[..])
        );
        assert_eq!(Request::decode(body.clone()).unwrap(), req);
        // The public encoder writes the same bytes.
        let mut buf = BytesMut::new();
        req.encode(&mut buf);
        assert_eq!(buf.freeze(), body);
        for cut in [0, 5, 14, 17, 20, 30, body.len() - 1] {
            assert!(Request::decode(body.slice(..cut)).is_err(), "cut {cut}");
        }
        let mut long = BytesMut::from(&body[..]);
        long.put_u8(0);
        assert!(Request::decode(long.freeze()).is_err());
    }

    #[test]
    fn request_encoder_error_and_method_limit() {
        let head = RequestHead::new(1, false, 0, "m", b"").unwrap();
        let failed = request_frame(Form::Native, addr("1.2.3"), addr("1.1.1"), &head, |buf| {
            buf.put_slice(b"partial");
            Err("cannot")
        });
        assert_eq!(failed, Err("cannot"));
        let longest = "m".repeat(u16::MAX as usize);
        assert!(RequestHead::new(1, false, 0, &longest, b"").is_some());
        let too_long = "m".repeat(u16::MAX as usize + 1);
        assert!(RequestHead::new(1, false, 0, &too_long, b"").is_none());
    }

    #[test]
    fn response_frames_round_trip_and_truncation() {
        let mut ok = ResponseFrame::new(Form::Native, addr("1.2.3"), addr("1.1.1"));
        let Ok(len) = ok.put_ok(7, |buf| {
            buf.put_slice(b"xyz");
            Ok::<_, Infallible>(())
        });
        let ok = ok.finish();
        assert_eq!(len + crate::codec::LEN_SIZE, ok.len());
        let want = Response {
            seq: 7,
            code: 0,
            text: String::new(),
            ret: Bytes::from_static(b"xyz"),
        };
        let body = body_of(ok, FrameKind::RpcResponse);
        assert_eq!(body.len(), want.encoded_len());
        assert_eq!(Response::decode(body.clone()).unwrap(), want);

        // An error replaces a result already written.
        let mut failed = ResponseFrame::new(Form::Native, addr("1.2.3"), addr("1.1.1"));
        let Ok(_) = failed.put_ok(8, |buf| {
            buf.put_slice(b"too big");
            Ok::<_, Infallible>(())
        });
        failed.put_error(8, &RpcError::Method("bad".into()), DEFAULT_MAX_FRAME);
        let body = body_of(failed.finish(), FrameKind::RpcResponse);
        let want = Response {
            seq: 8,
            code: super::super::ErrorCode::Method as u16,
            text: "bad".into(),
            ret: Bytes::new(),
        };
        assert_eq!(Response::decode(body.clone()).unwrap(), want);
        let mut buf = BytesMut::new();
        want.encode(&mut buf);
        assert_eq!(
            buf.freeze(),
            body,
            "the public encoder writes the same bytes"
        );
        for cut in 0..body.len() {
            assert!(Response::decode(body.slice(..cut)).is_err(), "cut {cut}");
        }
    }

    /// An error whose text would take the reply past the frame limit is cut to
    /// fit (the reply was refused on send before, and the caller waited for its
    /// timeout), in both layouts, at a character boundary.
    #[test]
    fn error_replies_fit_the_frame_limit() {
        let long = "é".repeat(6000);
        let forms = [
            Form::Native,
            #[cfg(feature = "go-compat")]
            Form::GoSeed,
        ];
        for form in forms {
            for max in [4092, 100, 30] {
                let mut f = ResponseFrame::new(form, addr("1.2.3"), addr("1.1.1"));
                f.put_error(9, &RpcError::Method(long.clone()), max);
                let frame = f.finish();
                assert!(
                    frame.len() - LEN_SIZE <= max,
                    "{form:?} {max}: {}",
                    frame.len()
                );
                let body = body_of(frame, FrameKind::RpcResponse);
                let r = Response::decode_as(form, body).unwrap();
                assert_eq!((r.seq, r.code), (9, ErrorCode::Method as u16), "{form:?}");
                assert!(
                    long.starts_with(&r.text) && !r.text.is_empty(),
                    "{form:?} {max}"
                );
            }
        }
    }
}
