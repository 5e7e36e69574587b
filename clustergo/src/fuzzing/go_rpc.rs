//! rpcgo bodies (`gocompat::rpc`) and the node's Go-form readers of them.

use bytes::{Bytes, BytesMut};

use super::Target;
use crate::gocompat::rpc::RequestParts;
use crate::gocompat::{GoRequest, GoResponse};
use crate::rpc::wire::{Form, RequestView, Response};

/// The rpcgo body target.
pub const TARGET: Target = Target {
    name: "go_rpc",
    run,
    seeds,
};

/// Decodes `data` as a request (canonical: re-encodes to the same bytes) and as a
/// response (round-trips), and checks the node's readers agree with the decoders.
pub fn run(data: &[u8]) {
    let body = Bytes::copy_from_slice(data);
    let req = GoRequest::decode(body.clone());
    if let Ok(req) = &req {
        let mut enc = BytesMut::new();
        req.encode(&mut enc).expect("a decoded request re-encodes");
        assert_eq!(enc.freeze(), body, "a request re-encodes to its bytes");
    }
    let parts = RequestParts::parse(&body);
    assert_eq!(req.is_ok(), parts.is_ok());
    let view = RequestView::parse_as(Form::GoSeed, &body);
    match (&req, view) {
        (Ok(req), Ok(view)) => {
            assert_eq!(
                (view.seq, view.one_way, view.method, &view.arg),
                (req.seq, req.one_way, &req.method[..], &req.arg)
            );
        }
        (Err(_), Err(_)) => {}
        (req, view) => panic!("GoRequest and RequestView disagree: {req:?} / {view:?}"),
    }
    let resp = GoResponse::decode(body.clone());
    if let Ok(resp) = &resp {
        let mut enc = BytesMut::new();
        resp.encode(&mut enc)
            .expect("a decoded response re-encodes");
        assert_eq!(GoResponse::decode(enc.freeze()).as_ref(), Ok(resp));
    }
    let native = Response::decode_as(Form::GoSeed, body);
    assert_eq!(native.is_ok(), resp.is_ok());
}

/// The captured echo request and response bodies, an error and a one-way request.
pub fn seeds() -> Vec<Vec<u8>> {
    let req = GoRequest {
        seq: 0x075d_09c2_0000_0001,
        one_way: false,
        method: "echo".into(),
        userdata: Bytes::new(),
        arg: Bytes::from_static(b"\x0a\x08sniperHW"),
    };
    let post = GoRequest {
        one_way: true,
        userdata: Bytes::from_static(b"ud"),
        ..req.clone()
    };
    let ok = GoResponse {
        seq: req.seq,
        userdata: Bytes::new(),
        code: 0,
        text: String::new(),
        ret: req.arg.clone(),
    };
    let failed = GoResponse {
        code: 4,
        text: "bad".into(),
        ret: Bytes::new(),
        ..ok.clone()
    };
    let mut out = Vec::new();
    for r in [req, post] {
        let mut b = BytesMut::new();
        r.encode(&mut b).expect("seeds are short");
        out.push(b.to_vec());
    }
    for r in [ok, failed] {
        let mut b = BytesMut::new();
        r.encode(&mut b).expect("seeds are short");
        out.push(b.to_vec());
    }
    out
}
