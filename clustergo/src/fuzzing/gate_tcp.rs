//! The gate's TCP packet codec (`crate::gate::tcp::PacketCodec`): `u32 BE length |
//! payload`, fed as a byte stream.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Encoder;

use super::{Target, feed_round_trip};
use crate::gate::tcp::PacketCodec;

/// The TCP packet codec target.
pub const TARGET: Target = Target {
    name: "gate_tcp",
    run,
    seeds,
};

/// A limit inputs reach: a longer declared length must fail before it is reserved.
const MAX_PACKET: usize = 1024;

/// Decodes `data` as a packet stream (whole and split); every packet is within the
/// limit and re-encodes to bytes that decode to the same packet.
pub fn run(data: &[u8]) {
    let decoded = feed_round_trip(
        || PacketCodec::new(MAX_PACKET),
        data,
        4 + MAX_PACKET,
        |packet| encode(packet.freeze()),
    );
    assert!(decoded.items.iter().all(|p| p.len() <= MAX_PACKET));
}

fn encode(packet: Bytes) -> BytesMut {
    let mut wire = BytesMut::new();
    PacketCodec::new(MAX_PACKET)
        .encode(packet, &mut wire)
        .expect("a packet within the limit encodes");
    wire
}

/// Packets as a gate sends them: empty, small, at the limit, several in a row.
pub fn seeds() -> Vec<Vec<u8>> {
    let packets = [&b""[..], b"login:alice", &[0xab; MAX_PACKET]]
        .map(|p| encode(Bytes::copy_from_slice(p)).to_vec());
    let mut seeds = packets.to_vec();
    seeds.push(packets[..2].concat());
    seeds
}
