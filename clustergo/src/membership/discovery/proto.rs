//! The discovery protocol's messages and framing (documented on
//! [`DiscoveryServer`](super::DiscoveryServer)).

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

use crate::addr::LogicAddr;
use crate::membership::{Member, MemberSet, MembershipChange};

/// Default largest frame, in bytes after the length field (1 MiB: about 15 000 members
/// in one snapshot).
pub const DISCOVERY_MAX_FRAME: usize = 1 << 20;

/// A message from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Request {
    /// Snapshot, then changes.
    Subscribe,
    /// Add or replace a member.
    Put {
        /// Echoed in the reply.
        id: u64,
        /// The member.
        member: Member,
    },
    /// Remove a member.
    Remove {
        /// Echoed in the reply.
        id: u64,
        /// Whom to remove.
        logic: LogicAddr,
    },
    /// Liveness check; answered with a reply.
    Ping {
        /// Echoed in the reply.
        id: u64,
    },
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Response {
    /// Every member, sent once after `subscribe`.
    Snapshot {
        /// The members.
        members: Vec<Member>,
    },
    /// What changed.
    Change {
        /// Members that appeared.
        #[serde(default)]
        added: Vec<Member>,
        /// Members that left.
        #[serde(default)]
        removed: Vec<Member>,
        /// Members whose address or flags changed.
        #[serde(default)]
        updated: Vec<Member>,
    },
    /// The outcome of a put or remove.
    Reply {
        /// The request's id.
        id: u64,
        /// Why it failed; absent on success.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

impl Response {
    pub(crate) fn change(change: &MembershipChange) -> Self {
        Self::Change {
            added: change.added.clone(),
            removed: change.removed.clone(),
            updated: change.updated.clone(),
        }
    }
}

/// Serializes a message into one frame body.
pub(crate) fn encode<T: Serialize>(msg: &T) -> Bytes {
    // Our messages are plain data with string keys: serialization cannot fail.
    Bytes::from(serde_json::to_vec(msg).expect("discovery messages always serialize"))
}

/// The frame codec: `u32` big-endian length, limit checked before allocating.
pub(crate) fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .big_endian()
        .max_frame_length(max_frame)
        .new_codec()
}

/// Applies a server `change` to the client's copy and returns what really changed
/// there (a change the client already had yields nothing).
pub(crate) fn apply_change(
    set: &mut MemberSet,
    added: Vec<Member>,
    removed: Vec<Member>,
    updated: Vec<Member>,
) -> MembershipChange {
    let mut out = MembershipChange::default();
    for m in removed {
        out.removed.extend(set.remove(m.logic()).removed);
    }
    for m in added.into_iter().chain(updated) {
        let c = set.put(m);
        out.added.extend(c.added);
        out.updated.extend(c.updated);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    fn member(logic: &str) -> Member {
        crate::membership::test_member(logic, 9001)
    }

    #[test]
    fn wire_shapes() {
        let put: Request = serde_json::from_str(
            r#"{"op":"put","id":7,"member":{"logic":"1.1.1","net":"127.0.0.1:9001"}}"#,
        )
        .unwrap();
        assert_eq!(
            put,
            Request::Put {
                id: 7,
                member: member("1.1.1")
            }
        );
        let sub: Request = serde_json::from_str(r#"{"op":"subscribe"}"#).unwrap();
        assert_eq!(sub, Request::Subscribe);
        let ping: Request = serde_json::from_str(r#"{"op":"ping","id":9}"#).unwrap();
        assert_eq!(ping, Request::Ping { id: 9 });
        let ok = encode(&Response::Reply { id: 3, error: None });
        assert_eq!(&ok[..], br#"{"type":"reply","id":3}"#);
        for bad in [
            r#"{"op":"dance"}"#,
            r#"{"op":"remove","id":1,"logic":"0.0.0"}"#,
            r#"{"op":"put","id":1}"#,
            "[]",
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn applying_a_change_twice_yields_nothing() {
        let mut set = MemberSet::new();
        let c = apply_change(&mut set, vec![member("1.1.1")], vec![], vec![]);
        assert_eq!(c.added, vec![member("1.1.1")]);
        assert!(apply_change(&mut set, vec![member("1.1.1")], vec![], vec![]).is_empty());
        let c = apply_change(&mut set, vec![], vec![member("1.1.1")], vec![]);
        assert_eq!(c.removed.len(), 1);
        assert!(apply_change(&mut set, vec![], vec![member("1.1.1")], vec![]).is_empty());
    }
}
