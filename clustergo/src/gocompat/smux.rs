//! The smux v1 frame (xtaci/smux v1.5.24, the Go seed's stream sessions), as a
//! pure codec. The sessions themselves run on the `async_smux` crate, which speaks
//! this layout; this codec pins the layout against the captures and lets tests and
//! fuzzing look at a session's bytes.
//!
//! ```text
//! ver u8 (1) | cmd u8 (0 SYN, 1 FIN, 2 PSH, 3 NOP, 4 UPD) | len u16 LE | sid u32 LE | data
//! ```
//! Client (dialer) stream ids are odd; the Go client's first is 3. v1 has no
//! per-stream window (UPD is v2's): a receiver bounds what it buffers by not
//! reading the socket.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// The only version the Go seed speaks (smux default config).
pub const VERSION: u8 = 1;
/// Bytes of a frame header.
pub const HEADER: usize = 8;

/// What an smux frame does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Cmd {
    /// Open stream `sid`.
    Syn = 0,
    /// Stream `sid` is closed by the sender.
    Fin = 1,
    /// Data for stream `sid`.
    Psh = 2,
    /// Keepalive (sid 0).
    Nop = 3,
    /// Window update (smux v2 only; refused in v1).
    Upd = 4,
}

/// One smux frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmuxFrame {
    /// What it does.
    pub cmd: Cmd,
    /// The stream.
    pub sid: u32,
    /// Payload (PSH only; at most 65535 bytes).
    pub data: Bytes,
}

/// Why bytes are not an smux v1 frame sequence.
#[derive(Debug, thiserror::Error)]
pub enum SmuxError {
    /// Not version 1.
    #[error("smux version {0}, expected 1")]
    Version(u8),
    /// Unknown or v2-only command.
    #[error("smux command {0} is not v1")]
    Cmd(u8),
    /// Data over 65535 bytes does not fit the u16 length: split it first.
    #[error("smux frame data of {0} bytes exceeds 65535")]
    TooLong(usize),
    /// The connection failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl SmuxFrame {
    /// Appends the frame. Data over 65535 bytes is refused ([`SmuxError::TooLong`],
    /// nothing appended): the caller splits it.
    pub fn encode_into(&self, dst: &mut BytesMut) -> Result<(), SmuxError> {
        let len =
            u16::try_from(self.data.len()).map_err(|_| SmuxError::TooLong(self.data.len()))?;
        dst.reserve(HEADER + self.data.len());
        dst.put_u8(VERSION);
        dst.put_u8(self.cmd as u8);
        dst.put_u16_le(len);
        dst.put_u32_le(self.sid);
        dst.put_slice(&self.data);
        Ok(())
    }
}

/// smux v1 frames as a tokio-util codec (`Ok(None)`: need more bytes).
#[derive(Debug, Clone, Copy, Default)]
pub struct SmuxCodec;

impl Decoder for SmuxCodec {
    type Item = SmuxFrame;
    type Error = SmuxError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<SmuxFrame>, SmuxError> {
        if src.is_empty() {
            return Ok(None);
        }
        if src[0] != VERSION {
            return Err(SmuxError::Version(src[0]));
        }
        if src.len() < 2 {
            return Ok(None);
        }
        let cmd = match src[1] {
            0 => Cmd::Syn,
            1 => Cmd::Fin,
            2 => Cmd::Psh,
            3 => Cmd::Nop,
            c => return Err(SmuxError::Cmd(c)),
        };
        if src.len() < HEADER {
            return Ok(None);
        }
        let len = u16::from_le_bytes([src[2], src[3]]) as usize;
        if src.len() < HEADER + len {
            src.reserve(HEADER + len - src.len());
            return Ok(None);
        }
        let mut head = src.split_to(HEADER);
        head.advance(4);
        let sid = head.get_u32_le();
        let data = src.split_to(len).freeze();
        Ok(Some(SmuxFrame { cmd, sid, data }))
    }
}

impl Encoder<SmuxFrame> for SmuxCodec {
    type Error = SmuxError;

    fn encode(&mut self, item: SmuxFrame, dst: &mut BytesMut) -> Result<(), SmuxError> {
        item.encode_into(dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(cmd: Cmd, sid: u32, data: &'static [u8]) -> SmuxFrame {
        SmuxFrame {
            cmd,
            sid,
            data: Bytes::from_static(data),
        }
    }

    /// GO-WIRE.md §1: SYN 3, PSH 3 "ping", FIN 3 from a Go client session.
    #[test]
    fn captured_syn_psh_fin() {
        let cases = [
            ("0100000003000000", frame(Cmd::Syn, 3, b"")),
            ("010204000300000070696e67", frame(Cmd::Psh, 3, b"ping")),
            ("0101000003000000", frame(Cmd::Fin, 3, b"")),
        ];
        let mut all = BytesMut::new();
        for (hex, want) in &cases {
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            let mut enc = BytesMut::new();
            want.encode_into(&mut enc).unwrap();
            assert_eq!(&enc[..], &bytes[..], "{want:?}");
            all.extend_from_slice(&bytes);
        }
        // Decoded as one byte stream, at every split point.
        let whole = all.clone().freeze();
        for split in 0..=whole.len() {
            let mut buf = BytesMut::from(&whole[..split]);
            let mut got = Vec::new();
            while let Some(f) = SmuxCodec.decode(&mut buf).unwrap() {
                got.push(f);
            }
            buf.extend_from_slice(&whole[split..]);
            while let Some(f) = SmuxCodec.decode(&mut buf).unwrap() {
                got.push(f);
            }
            let want: Vec<_> = cases.iter().map(|(_, f)| f.clone()).collect();
            assert_eq!(got, want, "split {split}");
        }
    }

    #[test]
    fn refuses_other_versions_and_v2_commands() {
        let mut b = BytesMut::from(&[2u8, 0, 0, 0, 3, 0, 0, 0][..]);
        assert!(matches!(
            SmuxCodec.decode(&mut b),
            Err(SmuxError::Version(2))
        ));
        let mut b = BytesMut::from(&[1u8, 4, 8, 0, 3, 0, 0, 0][..]);
        assert!(matches!(SmuxCodec.decode(&mut b), Err(SmuxError::Cmd(4))));
    }

    /// Data that does not fit the u16 length is an error, not a truncated length
    /// (the release build wrote `len as u16` before).
    #[test]
    fn data_over_65535_bytes_is_refused() {
        let mut b = BytesMut::new();
        let at_limit = SmuxFrame {
            cmd: Cmd::Psh,
            sid: 3,
            data: Bytes::from(vec![7; u16::MAX as usize]),
        };
        at_limit.encode_into(&mut b).unwrap();
        assert_eq!(b.len(), HEADER + u16::MAX as usize);
        let over = SmuxFrame {
            data: Bytes::from(vec![7; u16::MAX as usize + 1]),
            ..at_limit
        };
        let mut b = BytesMut::new();
        assert!(matches!(
            over.encode_into(&mut b),
            Err(SmuxError::TooLong(65536))
        ));
        assert!(b.is_empty(), "nothing appended");
        assert!(SmuxCodec.encode(over, &mut b).is_err());
    }
}
