//! The Go seed's connection setup: one encrypted hello from the dialer, four bytes
//! back from the acceptor, or a close.
//!
//! ```text
//! dialer   -> u32 len | IV[16] | AES-128-CBC(key, IV, u32 json_len | JSON | pad)
//!             (len = 16 + ciphertext; pad: PKCS#7, 1..16 bytes of its own value)
//!             JSON: {"LogicAddr":264193,"NetAddr":"127.0.0.1:7201"[,"IsStream":true]}
//! acceptor -> 00 00 00 00   (accepted; any refusal closes the connection unanswered)
//! ```
//!
//! Nothing proves anything here (see the module docs of `gocompat`): the key is
//! shared and fixed, the IV is the only randomness, and the Go dialer does not even
//! read the answer's value. Unlike the Go acceptor, ours caps what it reads
//! ([`MAX_HELLO`]) before allocating.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use bytes::BufMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::GoKey;
use crate::addr::LogicAddr;
use crate::handshake::HandshakeError;

type Encryptor = cbc::Encryptor<aes::Aes128>;
type Decryptor = cbc::Decryptor<aes::Aes128>;

/// Largest hello body (the length field's value) an acceptor reads: a JSON of three
/// short fields is well under 200 bytes; the Go acceptor reads any length.
pub const MAX_HELLO: usize = 1024;
const IV: usize = 16;
const BLOCK: usize = 16;
/// The acceptor's answer.
pub(crate) const ACCEPTED: [u8; 4] = [0; 4];

/// What a Go dialer claims, in clear once decrypted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GoHello {
    /// The dialer's logical address (raw u32 on the wire).
    #[serde(rename = "LogicAddr", with = "raw_addr")]
    pub logic: LogicAddr,
    /// The dialer's listen address as a string: the acceptor requires it to equal
    /// its membership's address for `logic`, exactly.
    #[serde(rename = "NetAddr")]
    pub net_addr: String,
    /// A stream connection (smux) rather than a frame connection.
    #[serde(rename = "IsStream", default, skip_serializing_if = "is_false")]
    pub is_stream: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

mod raw_addr {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::addr::LogicAddr;

    pub(super) fn serialize<S: Serializer>(a: &LogicAddr, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(a.raw())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LogicAddr, D::Error> {
        u32::deserialize(d).map(LogicAddr::from_raw)
    }
}

/// The whole hello as written on the wire, length field included, encrypted
/// under `key` with `iv` (random per handshake; fixed only in tests).
pub fn encode_hello(key: &GoKey, iv: &[u8; IV], hello: &GoHello) -> Vec<u8> {
    let json = serde_json::to_vec(hello).expect("a hello always serializes");
    let mut plain = Vec::with_capacity(4 + json.len() + BLOCK);
    plain.put_u32(json.len() as u32);
    plain.extend_from_slice(&json);
    let len = plain.len();
    plain.resize(len / BLOCK * BLOCK + BLOCK, 0);
    let ct = Encryptor::new(key.bytes().into(), iv.into())
        .encrypt_padded_mut::<Pkcs7>(&mut plain, len)
        .expect("room for a whole padding block");
    let mut out = Vec::with_capacity(4 + IV + ct.len());
    out.put_u32((IV + ct.len()) as u32);
    out.extend_from_slice(iv);
    out.extend_from_slice(ct);
    out
}

/// Checks a hello's length field before anything is read or allocated.
pub fn check_len(len: usize) -> Result<(), HandshakeError> {
    if len > MAX_HELLO {
        return Err(HandshakeError::Malformed("go hello too long"));
    }
    if len < IV + BLOCK || (len - IV) % BLOCK != 0 {
        return Err(HandshakeError::Malformed(
            "go hello is not IV + whole blocks",
        ));
    }
    Ok(())
}

/// Decrypts and parses a hello body (what follows the length field).
pub fn decode_hello(key: &GoKey, body: &[u8]) -> Result<GoHello, HandshakeError> {
    check_len(body.len())?;
    let (iv, ct) = body.split_at(IV);
    let mut buf = ct.to_vec();
    let plain = Decryptor::new(key.bytes().into(), iv.into())
        .decrypt_padded_mut::<Pkcs7>(&mut buf)
        .map_err(|_| HandshakeError::Malformed("go hello: bad padding (wrong key?)"))?;
    let Some((len, json)) = plain.split_first_chunk::<4>() else {
        return Err(HandshakeError::Malformed("go hello: no json length"));
    };
    let json = json
        .get(..u32::from_be_bytes(*len) as usize)
        .ok_or(HandshakeError::Malformed(
            "go hello: json length past the end",
        ))?;
    serde_json::from_slice(json).map_err(|_| HandshakeError::Malformed("go hello: bad json"))
}

/// The dialer's side: sends the hello and reads the 4-byte answer (its value is not
/// checked, as the Go dialer does not). A close instead of an answer is
/// [`HandshakeError::Closed`]: the Go acceptor refuses that way.
pub async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    key: &GoKey,
    hello: &GoHello,
) -> Result<(), HandshakeError> {
    let mut iv = [0u8; IV];
    getrandom::fill(&mut iv)
        .map_err(|e| HandshakeError::Io(std::io::Error::other(e.to_string())))?;
    stream.write_all(&encode_hello(key, &iv, hello)).await?;
    stream.flush().await?;
    let mut answer = [0u8; 4];
    match stream.read_exact(&mut answer).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(HandshakeError::Closed),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Err(HandshakeError::Closed),
        Err(e) => Err(e.into()),
    }
}

/// The acceptor's side, step one: reads and decrypts the hello. The caller checks
/// it against membership, then calls [`accept`] or drops the connection.
pub async fn read_hello<S: AsyncRead + Unpin>(
    stream: &mut S,
    key: &GoKey,
) -> Result<GoHello, HandshakeError> {
    let len = stream.read_u32().await? as usize;
    check_len(len)?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    decode_hello(key, &body)
}

/// The acceptor's side, step two: the 4-byte answer.
pub async fn accept<S: AsyncWrite + Unpin>(stream: &mut S) -> Result<(), HandshakeError> {
    stream.write_all(&ACCEPTED).await?;
    stream.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(is_stream: bool) -> GoHello {
        GoHello {
            logic: "1.2.1".parse().unwrap(),
            net_addr: "127.0.0.1:7201".into(),
            is_stream,
        }
    }

    /// The capture's sizes: 84 bytes (len 80) for a frame connection, 100 (len 96)
    /// for a stream connection; the JSON exactly as Go's `encoding/json` writes it.
    #[test]
    fn matches_the_captured_layout() {
        let json = br#"{"LogicAddr":264193,"NetAddr":"127.0.0.1:7201"}"#;
        assert_eq!(serde_json::to_vec(&hello(false)).unwrap(), json);
        let json = br#"{"LogicAddr":264193,"NetAddr":"127.0.0.1:7201","IsStream":true}"#;
        assert_eq!(serde_json::to_vec(&hello(true)).unwrap(), json);
        for (is_stream, wire, len) in [(false, 84, 80u32), (true, 100, 96)] {
            let bytes = encode_hello(&GoKey::default(), &[7; 16], &hello(is_stream));
            assert_eq!(bytes.len(), wire);
            assert_eq!(bytes[..4], len.to_be_bytes());
            assert_eq!(bytes[4..20], [7; 16]);
        }
    }

    /// Known-answer vector: AES-128-CBC under the seed key with IV 00..0f, computed
    /// independently (`openssl enc -aes-128-cbc`) over the same plaintext.
    #[test]
    fn known_answer_with_a_fixed_iv() {
        let iv: [u8; 16] = std::array::from_fn(|i| i as u8);
        let bytes = encode_hello(&GoKey::default(), &iv, &hello(false));
        assert_eq!(hex(&bytes), KAT_FRAMES);
        assert_eq!(
            decode_hello(&GoKey::default(), &bytes[4..]).unwrap(),
            hello(false)
        );
    }

    const KAT_FRAMES: &str = include_str!("testdata/hello_frames.hex");

    pub(crate) fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn round_trip_and_refusals_of_bad_input() {
        let key = GoKey::default();
        for h in [hello(false), hello(true)] {
            let bytes = encode_hello(&key, &[1; 16], &h);
            assert_eq!(decode_hello(&key, &bytes[4..]).unwrap(), h);
            // Another key: the padding (or the JSON) does not survive.
            let other = GoKey::new(b"other").unwrap();
            assert!(decode_hello(&other, &bytes[4..]).is_err());
            // Every truncation fails cleanly.
            for cut in 0..bytes.len() - 4 {
                assert!(decode_hello(&key, &bytes[4..4 + cut]).is_err(), "cut {cut}");
            }
        }
        let cases = [
            (0, false),
            (31, false),
            (32, true),
            (48, true),
            (40, false),
            (MAX_HELLO, true),
            (MAX_HELLO + 16, false),
        ];
        for (len, ok) in cases {
            assert_eq!(check_len(len).is_ok(), ok, "{len}");
        }
    }

    #[tokio::test]
    async fn dial_accept_and_refusal_by_close() {
        let key = GoKey::default();
        let (mut a, mut b) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move {
            let h = read_hello(&mut b, &GoKey::default()).await.unwrap();
            accept(&mut b).await.unwrap();
            h
        });
        dial(&mut a, &key, &hello(true)).await.unwrap();
        assert_eq!(server.await.unwrap(), hello(true));

        let (mut a, mut b) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let _ = read_hello(&mut b, &GoKey::default()).await;
            drop(b);
        });
        assert!(matches!(
            dial(&mut a, &key, &hello(false)).await,
            Err(HandshakeError::Closed)
        ));

        // A native hello (u16 length, "CGO1") is refused before any allocation.
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&[0, 40, b'C', b'G', b'O', b'1']).await.unwrap();
        assert!(matches!(
            read_hello(&mut b, &key).await,
            Err(HandshakeError::Malformed(_))
        ));
    }
}
