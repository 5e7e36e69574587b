//! RPC bodies ([`crate::rpc::wire`]): the request and the response parsers.

use std::convert::Infallible;

use bytes::{BufMut, Bytes, BytesMut};

use super::Target;
use crate::addr::LogicAddr;
use crate::codec::{DEFAULT_MAX_FRAME, Frame, FrameKind};
use crate::rpc::RpcError;
use crate::rpc::wire::{
    Form, Request, RequestHead, RequestView, Response, ResponseFrame, request_frame,
};

/// The RPC body target.
pub const TARGET: Target = Target {
    name: "rpc",
    run,
    seeds,
};

/// Parses `data` as a request body and as a response body; whatever parses must
/// re-encode (with the node's own frame writers too) to something that parses back
/// to the same value, and its slices must lie within the input.
pub fn run(data: &[u8]) {
    let body = Bytes::copy_from_slice(data);
    request(&body);
    response(&body);
}

fn request(body: &Bytes) {
    let view = RequestView::parse(body);
    let decoded = Request::decode(body.clone());
    let (view, req) = match (view, decoded) {
        (Ok(view), Ok(req)) => (view, req),
        (Err(a), Err(b)) => return assert_eq!(a, b),
        (view, req) => panic!("RequestView and Request disagree: {view:?} / {req:?}"),
    };
    assert_eq!(
        (
            view.seq,
            view.one_way,
            view.timeout_ms,
            view.method,
            &view.meta,
            &view.arg
        ),
        (
            req.seq,
            req.one_way,
            req.timeout_ms,
            &req.method[..],
            &req.meta,
            &req.arg
        )
    );
    // Every byte is accounted for: no trailing data, no length that overlaps.
    assert_eq!(req.encoded_len(), body.len());
    let mut enc = BytesMut::new();
    req.encode(&mut enc);
    let enc = enc.freeze();
    assert_eq!(enc.len(), body.len());
    assert_eq!(Request::decode(enc.clone()).as_ref(), Ok(&req));

    let (to, from) = route();
    let head = RequestHead::new(req.seq, req.one_way, req.timeout_ms, &req.method, &req.meta)
        .expect("a parsed method fits its length field");
    let Ok(frame) = request_frame(Form::Native, to, from, &head, |buf| {
        buf.put_slice(&req.arg);
        Ok::<_, Infallible>(())
    });
    let frame = Frame::parse(frame, usize::MAX).expect("the node's request frame parses");
    assert_eq!(
        (frame.kind, frame.to, frame.from, &frame.body),
        (FrameKind::RpcRequest, to, from, &enc)
    );
}

fn response(body: &Bytes) {
    let Ok(resp) = Response::decode(body.clone()) else {
        return;
    };
    assert!(resp.ret.len() <= body.len());
    let mut enc = BytesMut::new();
    resp.encode(&mut enc);
    assert_eq!(enc.len(), resp.encoded_len());
    assert_eq!(Response::decode(enc.freeze()).as_ref(), Ok(&resp));

    // The node's reply writer produces the same body for a success.
    if resp.code == 0 && resp.text.is_empty() {
        let (to, from) = route();
        let mut out = ResponseFrame::new(Form::Native, to, from);
        let Ok(_) = out.put_ok(resp.seq, |buf| {
            buf.put_slice(&resp.ret);
            Ok::<_, Infallible>(())
        });
        let frame = Frame::parse(out.finish(), usize::MAX).expect("the node's reply parses");
        assert_eq!(Response::decode(frame.body).as_ref(), Ok(&resp));
    }
}

fn route() -> (LogicAddr, LogicAddr) {
    let addr = |s: &str| s.parse::<LogicAddr>().expect("valid address");
    (addr("1.2.3"), addr("1.1.1"))
}

/// Requests and responses as the node writes them.
pub fn seeds() -> Vec<Vec<u8>> {
    let (to, from) = route();
    let body = |frame: Bytes| {
        Frame::parse(frame, DEFAULT_MAX_FRAME)
            .expect("the node's frames parse")
            .body
            .to_vec()
    };
    let mut seeds = Vec::new();
    for (seq, one_way, timeout, method, meta, arg) in [
        (1, false, 0, "echo", &b""[..], &b"hi"[..]),
        (
            u64::MAX,
            true,
            150,
            "game.Room/Join",
            &b"trace=1"[..],
            &[7u8; 64][..],
        ),
        (42, false, u32::MAX, "", &b""[..], &b""[..]),
    ] {
        let head = RequestHead::new(seq, one_way, timeout, method, meta).expect("short method");
        let Ok(frame) = request_frame(Form::Native, to, from, &head, |buf| {
            buf.put_slice(arg);
            Ok::<_, Infallible>(())
        });
        seeds.push(body(frame));
    }
    let mut ok = ResponseFrame::new(Form::Native, to, from);
    let Ok(_) = ok.put_ok(7, |buf| {
        buf.put_slice(b"result");
        Ok::<_, Infallible>(())
    });
    seeds.push(body(ok.finish()));
    let mut failed = ResponseFrame::new(Form::Native, to, from);
    failed.put_error(
        8,
        &RpcError::Method("no such method".into()),
        crate::codec::DEFAULT_MAX_FRAME,
    );
    seeds.push(body(failed.finish()));
    seeds
}
