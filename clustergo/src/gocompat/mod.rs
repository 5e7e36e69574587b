//! The Go seed's wire dialect (feature `go-compat`): a node configured with
//! [`Dialect::GoSeed`](crate::node::Dialect::GoSeed) joins a cluster of Go
//! clustergo nodes (the seed version) and exchanges messages, calls and streams
//! with them.
//!
//! Only the frame header is shared with the native dialect; this module holds what
//! differs, each concept in its file, each a pure codec with byte-exact tests
//! against traffic captured between two Go nodes:
//! - `key`: the handshake key ([`GoKey`]), the seed's constant by default;
//! - `handshake`: AES-128-CBC over length-prefixed JSON, the 4-byte accept,
//!   refusal by closing;
//! - `rpc`: rpcgo request/response bodies (u16 lengths, userdata, codes 0–7);
//! - `smux`: the smux v1 frame layout of stream sessions (the sessions themselves
//!   are the `async_smux` crate's);
//! - `session`: stream sessions over smux for [`crate::stream`];
//! - `tcp_keepalive`: Go's default TCP keepalive on the dialect's sockets.
//!
//! **No real authentication.** The key is fixed (or shared), there is no nonce and
//! the dialer does not check the answer: anyone who can reach a node's port and has
//! the seed's source can join. The node logs a warning at start. Use it inside a
//! trusted network only, while migrating.

pub mod handshake;
mod key;
pub mod rpc;
pub(crate) mod session;
pub mod smux;
pub(crate) mod tcp_keepalive;

pub use handshake::{GoHello, MAX_HELLO};
pub use key::{GoKey, GoKeyError, SEED_KEY};
pub use rpc::{GoRequest, GoResponse};

/// Largest frame the Go side sends or accepts, length field included
/// (`MaxPacketSize`). Bigger ones are dropped by the Go encoder and close the
/// connection at the Go decoder; this dialect refuses to send them (`TooLarge`).
pub const GO_MAX_PACKET: usize = 4096;

/// [`GO_MAX_PACKET`] as the length field's value (what `Config::max_frame` means).
pub const GO_MAX_FRAME: usize = GO_MAX_PACKET - crate::codec::LEN_SIZE;

/// Settings of the Go seed's dialect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoSeed {
    /// The handshake key: [`SEED_KEY`] unless the Go cluster was built with another.
    pub key: GoKey,
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};

    use super::*;
    use crate::addr::LogicAddr;
    use crate::codec::{Frame, FrameKind};
    use crate::node::Dialect;

    /// GO-WIRE.md §3: `EchoReq{msg:"sniperHW"}` sent as pb cmd 1 from 1.2.1 to
    /// 1.1.1, parsed with this dialect's limit and written back byte for byte.
    #[test]
    fn captured_pb_message() {
        let wire: &[u8] = &[
            0x00, 0x00, 0x00, 0x15, 0x01, 0x00, 0x04, 0x04, 0x01, 0x00, 0x04, 0x08, 0x01, 0x00,
            0x01, 0x0a, 0x08, b's', b'n', b'i', b'p', b'e', b'r', b'H', b'W',
        ];
        let frame = Frame::parse(Bytes::from_static(wire), GO_MAX_FRAME).unwrap();
        assert_eq!(frame.kind, FrameKind::Pb);
        assert_eq!(frame.cmd, 1);
        assert_eq!(frame.to.to_string(), "1.1.1");
        assert_eq!(frame.from.to_string(), "1.2.1");
        assert_eq!(&frame.body[..], &wire[15..]);
        let mut out = BytesMut::new();
        frame.encode_into(&mut out);
        assert_eq!(&out[..], wire);
    }

    #[test]
    fn the_dialect_caps_frames_at_4096_bytes_with_the_length_field() {
        let go = Dialect::go_seed();
        assert_eq!(go.max_frame(4 << 20), 4092);
        assert_eq!(go.max_frame(1000), 1000);
        assert!(!go.keepalives());
        assert!(Dialect::Native.keepalives());
        let big = Frame::put_header;
        let mut buf = BytesMut::new();
        big(
            &mut buf,
            FrameKind::Binary,
            LogicAddr::from_raw(1),
            LogicAddr::from_raw(2),
            1,
            GO_MAX_FRAME - 11,
        );
        buf.resize(GO_MAX_PACKET, 0);
        assert!(Frame::parse(buf.clone().freeze(), GO_MAX_FRAME).is_ok());
        let mut over = BytesMut::new();
        big(
            &mut over,
            FrameKind::Binary,
            LogicAddr::from_raw(1),
            LogicAddr::from_raw(2),
            1,
            GO_MAX_FRAME - 10,
        );
        over.resize(GO_MAX_PACKET + 1, 0);
        assert!(Frame::parse(over.freeze(), GO_MAX_FRAME).is_err());
    }
}
