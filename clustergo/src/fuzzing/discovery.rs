//! The discovery protocol (`crate::membership::discovery::proto`): length-delimited
//! frames of JSON, read as a server reads requests and as a client reads responses.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Encoder;

use super::{Target, feed_split};
use crate::addr::{Addr, LogicAddr};
use crate::membership::discovery::proto::{Request, Response, apply_change, codec, encode};
use crate::membership::{Member, MemberSet};

/// The discovery protocol target.
pub const TARGET: Target = Target {
    name: "discovery",
    run,
    seeds,
};

/// A limit inputs reach: a longer declared length must fail before it is reserved.
const MAX_FRAME: usize = 4096;

/// Decodes `data` as a frame stream (whole and split); each frame is parsed as a
/// request and as a response, whatever parses re-encodes to the same message, and
/// requests and responses are applied to member lists as the server and client do.
pub fn run(data: &[u8]) {
    let decoded = feed_split(|| codec(MAX_FRAME), data, 4 + MAX_FRAME);
    let mut server = MemberSet::new();
    let mut client = MemberSet::new();
    let mut seen = 0;
    for frame in decoded.items {
        assert!(frame.len() <= MAX_FRAME);
        if let Ok(request) = serde_json::from_slice::<Request>(&frame) {
            assert_eq!(reparse::<Request>(&request), request);
            match request {
                Request::Put { member, .. } => {
                    seen += 1;
                    server.put(member);
                }
                Request::Remove { logic, .. } => {
                    server.remove(logic);
                }
                Request::Subscribe | Request::Ping { .. } => {}
            }
        }
        if let Ok(response) = serde_json::from_slice::<Response>(&frame) {
            assert_eq!(reparse::<Response>(&response), response);
            match response {
                Response::Snapshot { members } => {
                    seen += members.len();
                    client.apply_snapshot(members);
                }
                Response::Change {
                    added,
                    removed,
                    updated,
                } => {
                    seen += added.len() + updated.len();
                    apply_change(&mut client, added, removed, updated);
                }
                Response::Reply { .. } => {}
            }
        }
    }
    assert!(server.len() + client.len() <= seen);
}

/// `msg` encoded as the server and client send it, framed, decoded again.
fn reparse<T: serde::Serialize + serde::de::DeserializeOwned>(msg: &T) -> T {
    let body = encode(msg);
    let wire = frame(body.clone());
    let decoded = feed_split(|| codec(usize::MAX), &wire, 4 + wire.len());
    assert_eq!(
        (&decoded.items[..], decoded.failed),
        (&[BytesMut::from(&body[..])][..], false)
    );
    serde_json::from_slice(&body).expect("an encoded message parses")
}

fn frame(body: Bytes) -> Vec<u8> {
    let mut wire = BytesMut::new();
    codec(usize::MAX)
        .encode(body, &mut wire)
        .expect("frames below the limit encode");
    wire.to_vec()
}

/// Every request and response, one per frame, and a subscription's first frames.
pub fn seeds() -> Vec<Vec<u8>> {
    let member = |logic: &str, net: &str, export: bool| Member {
        addr: Addr::new(
            logic.parse::<LogicAddr>().expect("valid address"),
            net.parse().expect("valid socket address"),
        ),
        export,
        available: !export,
    };
    let a = member("1.1.1", "127.0.0.1:9001", false);
    let b = member("1.2.3", "[::1]:9002", true);
    let requests = [
        Request::Subscribe,
        Request::Put {
            id: 7,
            member: b.clone(),
        },
        Request::Remove {
            id: 8,
            logic: a.logic(),
        },
        Request::Ping { id: u64::MAX },
    ]
    .map(|r| frame(encode(&r)));
    let responses = [
        Response::Snapshot {
            members: vec![a.clone(), b.clone()],
        },
        Response::Change {
            added: vec![b.clone()],
            removed: vec![a],
            updated: vec![b],
        },
        Response::Reply { id: 3, error: None },
        Response::Reply {
            id: 4,
            error: Some("member limit (1) reached".into()),
        },
    ]
    .map(|r| frame(encode(&r)));
    let mut seeds = requests.to_vec();
    seeds.extend(responses.iter().cloned());
    seeds.push(requests.concat());
    seeds.push(responses.concat());
    seeds
}
