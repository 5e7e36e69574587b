//! rpcgo's request and response bodies (rpcgo `da05693`), carried in frames of
//! kind 3 and 4 exactly like the native ones.
//!
//! ```text
//! request:  u64 seq | u8 oneway (0/1) | u16 method_len | method
//!           | u16 userdata_len | userdata | u16 arg_len | arg
//! response: u64 seq | u16 userdata_len | userdata | u16 code
//!           | [u16 text_len | text, only if code != 0] | u16 ret_len | ret
//! ```
//!
//! No deadline travels: a caller's timeout stays local. Codes 0–7 mean what the
//! native [`ErrorCode`]s 0–7 mean; the native-only codes 8–10 are sent as the
//! nearest Go code ([`go_code`]). Every length is a u16: a field over 65535 bytes
//! cannot be written, but frames stop at 4096 bytes in this dialect anyway.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::rpc::{ErrorCode, RpcError};

/// A malformed body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed go rpc {what}: {why}")]
pub struct GoWireError {
    what: &'static str,
    why: &'static str,
}

/// An rpcgo request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoRequest {
    /// Caller's sequence number.
    pub seq: u64,
    /// No response wanted.
    pub one_way: bool,
    /// Method name.
    pub method: String,
    /// Opaque caller bytes (the native dialect's interceptor metadata).
    pub userdata: Bytes,
    /// Encoded argument.
    pub arg: Bytes,
}

/// An rpcgo response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoResponse {
    /// The request's sequence number.
    pub seq: u64,
    /// Opaque bytes (unused by this crate; empty when it answers).
    pub userdata: Bytes,
    /// 0 for success, else an rpcgo error code (1–7).
    pub code: u16,
    /// Error text (empty on success).
    pub text: String,
    /// Encoded result.
    pub ret: Bytes,
}

/// Appends a u16 length and the bytes `put` writes after it. A field longer than
/// a u16 gets the length 65535 (the frame is then over the 4096-byte limit and
/// refused as too large before it is sent).
pub(crate) fn put_sized16<E>(
    dst: &mut BytesMut,
    put: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<(), E> {
    let at = dst.len();
    dst.put_u16(0);
    put(dst)?;
    let len = (dst.len() - at - 2).min(u16::MAX as usize) as u16;
    dst[at..at + 2].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn put_bytes16(dst: &mut BytesMut, b: &[u8]) {
    let Ok(()) = put_sized16(dst, |d| {
        d.put_slice(b);
        Ok::<_, std::convert::Infallible>(())
    });
}

fn take16(src: &mut Bytes) -> Option<Bytes> {
    if src.len() < 2 {
        return None;
    }
    let len = src.get_u16() as usize;
    (src.len() >= len).then(|| src.split_to(len))
}

/// Appends a request body; `put_arg` writes the argument in place.
pub(crate) fn put_request<E>(
    dst: &mut BytesMut,
    seq: u64,
    one_way: bool,
    method: &str,
    userdata: &[u8],
    put_arg: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<(), E> {
    dst.put_u64(seq);
    dst.put_u8(one_way as u8);
    put_bytes16(dst, method.as_bytes());
    put_bytes16(dst, userdata);
    put_sized16(dst, put_arg)
}

/// Appends a response body; `put_ret` writes the result in place (nothing is
/// written for it when `code != 0`).
pub(crate) fn put_response<E>(
    dst: &mut BytesMut,
    seq: u64,
    code: u16,
    text: &str,
    put_ret: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<(), E> {
    dst.put_u64(seq);
    put_bytes16(dst, b"");
    dst.put_u16(code);
    if code != 0 {
        put_bytes16(dst, text.as_bytes());
    }
    put_sized16(dst, put_ret)
}

/// The rpcgo code and text for `err`: 1–7 as they are, the native-only codes as
/// the nearest Go one (busy → service unavailable, unreachable and codec → other).
pub fn go_code(err: &RpcError) -> (u16, String) {
    match err.code() {
        ErrorCode::Busy => (ErrorCode::ServiceUnavailable as u16, err.to_string()),
        ErrorCode::Unreachable | ErrorCode::Codec => (ErrorCode::Other as u16, err.to_string()),
        code => (code as u16, err.wire_text()),
    }
}

/// Refuses fields a u16 length cannot carry, before anything is written.
fn fit16(what: &'static str, fields: &[usize]) -> Result<(), GoWireError> {
    if fields.iter().any(|&n| n > u16::MAX as usize) {
        return Err(GoWireError {
            what,
            why: "a field over 65535 bytes",
        });
    }
    Ok(())
}

impl GoRequest {
    /// Appends the body to `dst`. A method, userdata or argument over 65535 bytes
    /// is an error (nothing appended), not a truncated length.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), GoWireError> {
        fit16(
            "request",
            &[self.method.len(), self.userdata.len(), self.arg.len()],
        )?;
        let Ok(()) = put_request(
            dst,
            self.seq,
            self.one_way,
            &self.method,
            &self.userdata,
            |d| {
                d.put_slice(&self.arg);
                Ok::<_, std::convert::Infallible>(())
            },
        );
        Ok(())
    }

    /// Parses a body; `userdata` and `arg` are slices of `src`.
    pub fn decode(src: Bytes) -> Result<Self, GoWireError> {
        let p = RequestParts::parse(&src)?;
        Ok(Self {
            seq: p.seq,
            one_way: p.one_way,
            method: p.method.to_owned(),
            userdata: p.userdata,
            arg: p.arg,
        })
    }
}

/// A request read in place: the method borrows the body (the server's receive path).
#[derive(Debug)]
pub(crate) struct RequestParts<'a> {
    pub(crate) seq: u64,
    pub(crate) one_way: bool,
    pub(crate) method: &'a str,
    pub(crate) userdata: Bytes,
    pub(crate) arg: Bytes,
}

impl<'a> RequestParts<'a> {
    pub(crate) fn parse(body: &'a Bytes) -> Result<Self, GoWireError> {
        let err = |why| GoWireError {
            what: "request",
            why,
        };
        let mut b = &body[..];
        if b.len() < 8 + 1 + 2 {
            return Err(err("truncated header"));
        }
        let seq = b.get_u64();
        let one_way = match b.get_u8() {
            0 => false,
            1 => true,
            _ => return Err(err("bad oneway flag")),
        };
        let method_len = b.get_u16() as usize;
        let method = b.get(..method_len).ok_or_else(|| err("truncated method"))?;
        let method = std::str::from_utf8(method).map_err(|_| err("method is not utf-8"))?;
        let mut rest = body.slice(body.len() - b.len() + method_len..);
        let userdata = take16(&mut rest).ok_or_else(|| err("truncated userdata"))?;
        let arg = take16(&mut rest).ok_or_else(|| err("truncated argument"))?;
        if !rest.is_empty() {
            return Err(err("trailing bytes"));
        }
        Ok(Self {
            seq,
            one_way,
            method,
            userdata,
            arg,
        })
    }
}

impl GoResponse {
    /// Appends the body to `dst` (with the writer the node replies with; its
    /// userdata is always empty). A field over 65535 bytes is an error (nothing
    /// appended), not a truncated length.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), GoWireError> {
        let text = if self.code != 0 { self.text.len() } else { 0 };
        fit16("response", &[self.userdata.len(), text, self.ret.len()])?;
        dst.put_u64(self.seq);
        put_bytes16(dst, &self.userdata);
        dst.put_u16(self.code);
        if self.code != 0 {
            put_bytes16(dst, self.text.as_bytes());
        }
        put_bytes16(dst, &self.ret);
        Ok(())
    }

    /// Parses a body; `ret` is a slice of `src`.
    pub fn decode(mut src: Bytes) -> Result<Self, GoWireError> {
        let err = |why| GoWireError {
            what: "response",
            why,
        };
        if src.len() < 8 {
            return Err(err("truncated header"));
        }
        let seq = src.get_u64();
        let userdata = take16(&mut src).ok_or_else(|| err("truncated userdata"))?;
        if src.len() < 2 {
            return Err(err("truncated code"));
        }
        let code = src.get_u16();
        let text = if code != 0 {
            let t = take16(&mut src).ok_or_else(|| err("truncated error text"))?;
            String::from_utf8_lossy(&t).into_owned()
        } else {
            String::new()
        };
        let ret = take16(&mut src).ok_or_else(|| err("truncated result"))?;
        if !src.is_empty() {
            return Err(err("trailing bytes"));
        }
        Ok(Self {
            seq,
            userdata,
            code,
            text,
            ret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{DEFAULT_MAX_FRAME, Frame, FrameKind};

    fn unhex(s: &str) -> Bytes {
        let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<_>>()
            .into()
    }

    /// GO-WIRE.md §4: the captured `echo` call, `EchoReq{msg:"sniperHW"}`.
    const REQUEST: &str = "00000026 03 00040401 00040801 075d09c200000001 00 0004 6563686f 0000 000a 0a08736e697065724857";
    const RESPONSE: &str =
        "00000021 04 00040801 00040401 075d09c200000001 0000 0000 000a 0a08736e697065724857";
    const ECHO_ARG: &str = "0a08736e697065724857";

    #[test]
    fn captured_echo_request_and_response() {
        let raw = unhex(REQUEST);
        let frame = Frame::parse(raw.clone(), DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(frame.kind, FrameKind::RpcRequest);
        assert_eq!(
            (frame.to.to_string(), frame.from.to_string()),
            ("1.1.1".into(), "1.2.1".into())
        );
        let req = GoRequest::decode(frame.body.clone()).unwrap();
        let want = GoRequest {
            seq: 0x075d09c200000001,
            one_way: false,
            method: "echo".into(),
            userdata: Bytes::new(),
            arg: unhex(ECHO_ARG),
        };
        assert_eq!(req, want);
        let mut enc = BytesMut::new();
        want.encode(&mut enc).unwrap();
        assert_eq!(enc.freeze(), frame.body);

        let raw = unhex(RESPONSE);
        let frame = Frame::parse(raw, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(frame.kind, FrameKind::RpcResponse);
        let resp = GoResponse::decode(frame.body.clone()).unwrap();
        let want = GoResponse {
            seq: 0x075d09c200000001,
            userdata: Bytes::new(),
            code: 0,
            text: String::new(),
            ret: unhex(ECHO_ARG),
        };
        assert_eq!(resp, want);
        let mut enc = BytesMut::new();
        let Ok(()) = put_response(&mut enc, want.seq, 0, "", |d| {
            d.put_slice(&want.ret);
            Ok::<_, std::convert::Infallible>(())
        });
        assert_eq!(
            enc.freeze(),
            frame.body,
            "the node's reply writer matches the capture"
        );
    }

    #[test]
    fn errors_one_way_and_truncation() {
        let resp = GoResponse {
            seq: 9,
            userdata: Bytes::from_static(b"u"),
            code: 4,
            text: "bad".into(),
            ret: Bytes::new(),
        };
        let mut enc = BytesMut::new();
        resp.encode(&mut enc).unwrap();
        let body = enc.freeze();
        assert_eq!(
            &body[..],
            &unhex("0000000000000009 0001 75 0004 0003 626164 0000")[..]
        );
        assert_eq!(GoResponse::decode(body.clone()).unwrap(), resp);
        for cut in 0..body.len() {
            assert!(GoResponse::decode(body.slice(..cut)).is_err(), "cut {cut}");
        }
        let req = GoRequest {
            seq: 1,
            one_way: true,
            method: "m".into(),
            userdata: Bytes::from_static(b"ud"),
            arg: Bytes::from_static(b"a"),
        };
        let mut enc = BytesMut::new();
        req.encode(&mut enc).unwrap();
        let body = enc.freeze();
        assert_eq!(
            &body[..],
            &unhex("0000000000000001 01 0001 6d 0002 7564 0001 61")[..]
        );
        assert_eq!(GoRequest::decode(body.clone()).unwrap(), req);
        for cut in 0..body.len() {
            assert!(GoRequest::decode(body.slice(..cut)).is_err(), "cut {cut}");
        }
        let mut bad = BytesMut::from(&body[..]);
        bad[8] = 2;
        assert!(GoRequest::decode(bad.freeze()).is_err());
    }

    /// A field over 65535 bytes is refused, not written with a truncated length
    /// (the u16 field read 65535 while more bytes followed).
    #[test]
    fn fields_over_a_u16_are_refused() {
        let big = Bytes::from(vec![1; u16::MAX as usize + 1]);
        let fits = Bytes::from(vec![1; u16::MAX as usize]);
        let req = |arg: Bytes, userdata: Bytes| GoRequest {
            seq: 1,
            one_way: false,
            method: "m".into(),
            userdata,
            arg,
        };
        let resp = |ret: Bytes, code: u16, text: String| GoResponse {
            seq: 1,
            userdata: Bytes::new(),
            code,
            text,
            ret,
        };
        let long = "t".repeat(u16::MAX as usize + 1);
        let mut b = BytesMut::new();
        assert!(req(big.clone(), Bytes::new()).encode(&mut b).is_err());
        assert!(req(Bytes::new(), big.clone()).encode(&mut b).is_err());
        assert!(resp(big.clone(), 0, String::new()).encode(&mut b).is_err());
        assert!(resp(Bytes::new(), 4, long.clone()).encode(&mut b).is_err());
        assert!(b.is_empty(), "nothing appended");
        // At the limit, and text that is not sent (code 0), are fine.
        req(fits.clone(), Bytes::new()).encode(&mut b).unwrap();
        assert_eq!(GoRequest::decode(b.split().freeze()).unwrap().arg, fits);
        resp(fits.clone(), 0, long).encode(&mut b).unwrap();
        assert_eq!(GoResponse::decode(b.split().freeze()).unwrap().ret, fits);
    }

    #[test]
    fn error_codes_both_ways() {
        let peer: crate::LogicAddr = "1.1.1".parse().unwrap();
        // (error, code sent): 1–7 as they are, 8–10 as the nearest Go code.
        let cases = [
            (RpcError::InvalidMethod("x".into()), 1),
            (RpcError::Timeout, 2),
            (RpcError::Cancelled, 3),
            (RpcError::Method("m".into()), 4),
            (RpcError::Other("o".into()), 5),
            (RpcError::ServiceUnavailable("s".into()), 6),
            (RpcError::Disconnected(peer), 7),
            (RpcError::Busy, 6),
            (RpcError::Unreachable(peer), 5),
            (RpcError::Codec("c".into()), 5),
        ];
        for (err, code) in cases {
            let (sent, text) = go_code(&err);
            assert_eq!(sent, code, "{err}");
            let back = RpcError::from_wire(sent, text, peer);
            if code == err.code() as u16 {
                assert_eq!(back, err);
            } else {
                assert_eq!(back.code() as u16, code);
            }
        }
    }
}
