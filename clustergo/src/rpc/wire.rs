//! RPC bodies carried in frames of kind 3 (request) and 4 (response).
//!
//! ```text
//! request:  u64 seq | u8 flags (bit 0: one-way) | u32 timeout_ms (0: none)
//!           | u16 method_len | method | u32 meta_len | meta | u32 arg_len | arg
//! response: u64 seq | u16 code (0: ok) | u32 text_len | text | u32 ret_len | ret
//! ```
//!
//! The deadline travels as time *remaining* when the request was sent, so clocks need
//! not agree; a server skips a request whose time ran out while it was queued. `meta`
//! is opaque caller data (trace context, auth) surfaced to interceptors.

use bytes::{Buf, BufMut, Bytes, BytesMut};

const ONE_WAY: u8 = 1;

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
    /// Bytes the encoded body takes.
    pub fn encoded_len(&self) -> usize {
        8 + 1 + 4 + 2 + self.method.len() + 4 + self.meta.len() + 4 + self.arg.len()
    }

    /// Appends the body to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u64(self.seq);
        dst.put_u8(if self.one_way { ONE_WAY } else { 0 });
        dst.put_u32(self.timeout_ms);
        dst.put_u16(self.method.len() as u16);
        dst.put_slice(self.method.as_bytes());
        dst.put_u32(self.meta.len() as u32);
        dst.put_slice(&self.meta);
        dst.put_u32(self.arg.len() as u32);
        dst.put_slice(&self.arg);
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

/// Bytes of a request body's fixed fields plus `method`, before meta and argument.
pub(crate) fn request_prefix_len(method: &str) -> usize {
    8 + 1 + 4 + 2 + method.len() + 4 + 4
}

impl Response {
    /// Bytes the encoded body takes.
    pub fn encoded_len(&self) -> usize {
        8 + 2 + 4 + self.text.len() + 4 + self.ret.len()
    }

    /// Appends the body to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.put_u64(self.seq);
        dst.put_u16(self.code);
        dst.put_u32(self.text.len() as u32);
        dst.put_slice(self.text.as_bytes());
        dst.put_u32(self.ret.len() as u32);
        dst.put_slice(&self.ret);
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
    use super::*;

    #[test]
    fn request_round_trip_and_truncation() {
        let req = Request {
            seq: 42,
            one_way: true,
            timeout_ms: 150,
            method: "echo".into(),
            meta: Bytes::from_static(b"trace"),
            arg: Bytes::from(vec![7u8; 70_000]),
        };
        let mut buf = BytesMut::new();
        req.encode(&mut buf);
        assert_eq!(buf.len(), req.encoded_len());
        let bytes = buf.freeze();
        assert_eq!(Request::decode(bytes.clone()).unwrap(), req);
        for cut in [0, 5, 14, 17, 20, 30, bytes.len() - 1] {
            assert!(Request::decode(bytes.slice(..cut)).is_err(), "cut {cut}");
        }
        let mut long = BytesMut::from(&bytes[..]);
        long.put_u8(0);
        assert!(Request::decode(long.freeze()).is_err());
    }

    #[test]
    fn response_round_trip_and_truncation() {
        let resp = Response {
            seq: 7,
            code: 4,
            text: "bad".into(),
            ret: Bytes::from_static(b"xyz"),
        };
        let mut buf = BytesMut::new();
        resp.encode(&mut buf);
        assert_eq!(buf.len(), resp.encoded_len());
        let bytes = buf.freeze();
        assert_eq!(Response::decode(bytes.clone()).unwrap(), resp);
        for cut in 0..bytes.len() {
            assert!(Response::decode(bytes.slice(..cut)).is_err(), "cut {cut}");
        }
    }
}
