//! TLS 1.3 record protection (RFC 8446 §5) for node links, done here instead of
//! in rustls once the handshake is over (`handshake.rs`).
//!
//! Why our own: rustls copies each record's plaintext in and out of its own
//! buffers, reads at most 4 KiB more than it holds per syscall and allocates per
//! record, which on a bulk stream cost about as much CPU as the cipher
//! (BENCHMARKS.md, "TLS stream sessions"). Here a record is sealed straight from
//! the writer's bytes into the outgoing buffer and opened straight into the
//! reader's buffer when it has room ([`RecordKey::seal_into`],
//! [`RecordKey::open_into`]): with aws-lc-rs the cipher is the only pass over the
//! data (with ring, on CPUs where it is faster, one copy more: `aead.rs`). rustls
//! still runs the whole handshake, certificate checks and key schedule; this
//! file only applies the traffic keys it derived.
//!
//! Pure: no I/O. The halves that use it are in `io.rs`.

use std::io;
use std::ops::Range;

use rustls::ConnectionTrafficSecrets;

use super::aead::{Aead, Algorithm, Backend};

/// The record header: type, legacy version, ciphertext length.
pub(crate) const HEADER_LEN: usize = 5;
/// The AEAD tag of every suite TLS 1.3 links use.
pub(crate) const TAG_LEN: usize = 16;
/// Most data bytes one record carries (RFC 8446 §5.1).
pub(crate) const MAX_DATA: usize = 1 << 14;
/// Longest ciphertext a peer may send (RFC 8446 §5.2).
pub(crate) const MAX_CIPHERTEXT: usize = MAX_DATA + 256;
/// A whole record at its longest.
pub(crate) const MAX_RECORD: usize = HEADER_LEN + MAX_CIPHERTEXT;
/// The bytes a record adds to its data: header, inner content type, tag.
pub(crate) const OVERHEAD: usize = HEADER_LEN + 1 + TAG_LEN;

/// Content types (RFC 8446 §5.1): the outer type of every protected record is
/// `APPLICATION_DATA`; the real one is the last non-zero byte of its plaintext.
pub(crate) const ALERT: u8 = 21;
pub(crate) const HANDSHAKE: u8 = 22;
pub(crate) const APPLICATION_DATA: u8 = 23;

/// The legacy version every TLS 1.3 record carries.
const LEGACY_VERSION: [u8; 2] = [3, 3];

/// An error for bytes from the peer that break the record layer: the link ends.
pub(crate) fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("tls: {what}"))
}

/// One direction's traffic key: the AEAD key, its IV and the next record's
/// sequence number.
pub(crate) struct RecordKey {
    aead: Aead,
    iv: [u8; 12],
    seq: u64,
}

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordKey")
            .field("backend", &self.aead.backend())
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl RecordKey {
    /// The key rustls derived, starting at sequence number `seq`, in the AEAD
    /// library that is faster on this CPU.
    pub(crate) fn new(secrets: ConnectionTrafficSecrets, seq: u64) -> io::Result<Self> {
        Self::with_backend(secrets, seq, Backend::for_this_cpu())
    }

    /// [`new`](Self::new) in a given library.
    pub(crate) fn with_backend(
        secrets: ConnectionTrafficSecrets,
        seq: u64,
        backend: Backend,
    ) -> io::Result<Self> {
        let (algorithm, key, iv) = match &secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (Algorithm::Aes128Gcm, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (Algorithm::Aes256Gcm, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (Algorithm::Chacha20Poly1305, key, iv)
            }
            _ => {
                return Err(io::Error::other(
                    "tls: negotiated cipher suite not supported",
                ));
            }
        };
        let iv = iv
            .as_ref()
            .try_into()
            .map_err(|_| io::Error::other("tls: bad traffic IV"))?;
        Ok(Self {
            aead: Aead::new(algorithm, key.as_ref(), backend)?,
            iv,
            seq,
        })
    }

    /// Records protected with this key so far (the next one's sequence number).
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// The next record's nonce: the IV with the sequence number XORed into its
    /// last 8 bytes (RFC 8446 §5.3). Each number is used once.
    fn next_nonce(&mut self) -> io::Result<[u8; 12]> {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        self.seq = self
            .seq
            .checked_add(1)
            .ok_or_else(|| io::Error::other("tls: record sequence numbers exhausted"))?;
        Ok(nonce)
    }

    /// Seals `data` (at most [`MAX_DATA`] bytes) with inner content type `typ` as
    /// one record written to the front of `out`, which must hold
    /// `data.len() + OVERHEAD` bytes; returns the record's length.
    pub(crate) fn seal_into(&mut self, typ: u8, data: &[u8], out: &mut [u8]) -> io::Result<usize> {
        debug_assert!(data.len() <= MAX_DATA);
        let len = data.len() + OVERHEAD;
        let header = header(data.len() + 1 + TAG_LEN);
        let (head, body) = out[..len].split_at_mut(HEADER_LEN);
        head.copy_from_slice(&header);
        let nonce = self.next_nonce()?;
        self.aead.seal_into(nonce, header, data, typ, body)?;
        Ok(len)
    }

    /// Seals the `len` data bytes already at `out[HEADER_LEN..]` (copied there
    /// from short pieces) with inner content type `typ`, in place; `out` must hold
    /// `len + OVERHEAD` bytes. Returns the record's length.
    pub(crate) fn seal_gathered(
        &mut self,
        typ: u8,
        len: usize,
        out: &mut [u8],
    ) -> io::Result<usize> {
        debug_assert!(len <= MAX_DATA);
        let header = header(len + 1 + TAG_LEN);
        let (head, body) = out[..len + OVERHEAD].split_at_mut(HEADER_LEN);
        head.copy_from_slice(&header);
        let (plain, tag_room) = body.split_at_mut(len + 1);
        plain[len] = typ;
        let nonce = self.next_nonce()?;
        let tag = self.aead.seal_in_place(nonce, header, plain)?;
        tag_room.copy_from_slice(&tag);
        Ok(len + OVERHEAD)
    }

    /// Opens `record` (a whole record, checked by [`record_len`]) into `out`, which
    /// must hold its ciphertext length less the tag. Returns the inner content
    /// type and the data's length (at the front of `out`). The bytes of `out`
    /// mean nothing when this fails.
    pub(crate) fn open_into(&mut self, record: &[u8], out: &mut [u8]) -> io::Result<(u8, usize)> {
        let (header, body) = record.split_at(HEADER_LEN);
        let (ciphertext, tag) = body.split_at(body.len() - TAG_LEN);
        let out = &mut out[..ciphertext.len()];
        let nonce = self.next_nonce()?;
        self.aead
            .open_into(nonce, aad(header), ciphertext, tag, out)?;
        inner_type(out)
    }

    /// Opens `record` (a whole record) where it lies. Returns the inner content
    /// type and where the data now is within `record`.
    pub(crate) fn open_in_place(&mut self, record: &mut [u8]) -> io::Result<(u8, Range<usize>)> {
        let (header, body) = record.split_at_mut(HEADER_LEN);
        let nonce = self.next_nonce()?;
        let plain = self.aead.open_in_place(nonce, aad(header), body)?;
        let (typ, len) = inner_type(plain)?;
        Ok((typ, HEADER_LEN..HEADER_LEN + len))
    }
}

/// A record's header as its additional authenticated data.
fn aad(header: &[u8]) -> [u8; HEADER_LEN] {
    let mut aad = [0; HEADER_LEN];
    aad.copy_from_slice(header);
    aad
}

/// The header of a record whose ciphertext (with its tag) is `len` bytes.
fn header(len: usize) -> [u8; HEADER_LEN] {
    let [hi, lo] = (len as u16).to_be_bytes();
    [
        APPLICATION_DATA,
        LEGACY_VERSION[0],
        LEGACY_VERSION[1],
        hi,
        lo,
    ]
}

/// Splits a record's plaintext (data, content type, zero padding): the content
/// type and the data's length.
fn inner_type(plain: &[u8]) -> io::Result<(u8, usize)> {
    // RFC 8446 §5.4: at most 2^14 + 1 bytes with the type and the padding.
    if plain.len() > MAX_DATA + 1 {
        return Err(bad("a record longer than 2^14 bytes"));
    }
    let at = plain
        .iter()
        .rposition(|&b| b != 0)
        .ok_or_else(|| bad("a record without a content type"))?;
    Ok((plain[at], at))
}

/// The length of the whole record at the front of `buf`, or `None` if `buf` does
/// not hold all of it yet. Errors for a header no TLS 1.3 peer sends after the
/// handshake.
pub(crate) fn record_len(buf: &[u8]) -> io::Result<Option<usize>> {
    Ok(declared_len(buf)?.filter(|&len| buf.len() >= len))
}

/// The length of the whole record whose header begins `buf` (checked as by
/// [`record_len`]), whether or not the rest is here; `None` before the header.
pub(crate) fn declared_len(buf: &[u8]) -> io::Result<Option<usize>> {
    let Some(head) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    if head[0] != APPLICATION_DATA {
        return Err(bad(&format!("unexpected record type {}", head[0])));
    }
    if head[1..3] != LEGACY_VERSION {
        return Err(bad("unexpected record version"));
    }
    let len = usize::from(u16::from_be_bytes([head[3], head[4]]));
    if !(TAG_LEN + 1..=MAX_CIPHERTEXT).contains(&len) {
        return Err(bad(&format!("a record of {len} bytes")));
    }
    Ok(Some(HEADER_LEN + len))
}

const KEY_UPDATE: u8 = 24;

/// A handshake record's data once the handshake is over. Our peers send only key
/// updates (servers issue no session tickets), whole and each alone in its record
/// (RFC 8446 §5.1); anything else ends the link. Returns whether the peer asks us
/// to move to our next key too.
pub(crate) fn key_update(data: &[u8]) -> io::Result<bool> {
    match data {
        [KEY_UPDATE, 0, 0, 1, 0] => Ok(false),
        [KEY_UPDATE, 0, 0, 1, 1] => Ok(true),
        [KEY_UPDATE, ..] => Err(bad("a malformed key update")),
        [] => Err(bad("an empty handshake record")),
        [t, ..] => Err(bad(&format!("unexpected handshake message {t}"))),
    }
}

/// A key update message (not asking the peer to update its own key).
pub(crate) const KEY_UPDATE_NOT_REQUESTED: [u8; 5] = [KEY_UPDATE, 0, 0, 1, 0];
/// The close_notify alert (warning level, description 0).
pub(crate) const CLOSE_NOTIFY: [u8; 2] = [1, 0];

/// What an alert's data means for the reader: `Ok(())` for close_notify (the
/// peer's end of data), an error for anything else.
pub(crate) fn alert(data: &[u8]) -> io::Result<()> {
    match data {
        [_, 0] => Ok(()),
        [_, description] => Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!("tls: the peer sent alert {description}"),
        )),
        _ => Err(bad("a malformed alert")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::cipher::{AeadKey, Iv};

    /// AES-256-GCM secrets (rustls makes 16-byte keys only itself; AES-128-GCM
    /// is covered by the handshake tests, which negotiate it).
    fn secrets(byte: u8) -> ConnectionTrafficSecrets {
        ConnectionTrafficSecrets::Aes256Gcm {
            key: AeadKey::from([byte; 32]),
            iv: Iv::from([byte; 12]),
        }
    }

    /// A table row: input bytes and the outcome (`Err(())`: refused).
    type Case<T> = (&'static [u8], Result<T, ()>);

    fn pair() -> (RecordKey, RecordKey) {
        (
            RecordKey::new(secrets(7), 0).unwrap(),
            RecordKey::new(secrets(7), 0).unwrap(),
        )
    }

    fn seal(key: &mut RecordKey, typ: u8, data: &[u8]) -> Vec<u8> {
        let mut out = vec![0; data.len() + OVERHEAD];
        let n = key.seal_into(typ, data, &mut out).unwrap();
        assert_eq!(n, out.len());
        out
    }

    #[test]
    fn sealed_records_open_both_ways_in_order() {
        let (mut tx, mut rx) = pair();
        for (i, len) in [0, 1, 12, 1000, MAX_DATA].into_iter().enumerate() {
            let data: Vec<u8> = (0..len).map(|b| (b * 7 + i) as u8).collect();
            let record = seal(&mut tx, APPLICATION_DATA, &data);
            assert_eq!(record_len(&record).unwrap(), Some(record.len()));
            assert_eq!(record_len(&record[..record.len() - 1]).unwrap(), None);
            if i % 2 == 0 {
                let mut out = vec![0; record.len() - HEADER_LEN - TAG_LEN];
                let (typ, n) = rx.open_into(&record, &mut out).unwrap();
                assert_eq!((typ, &out[..n]), (APPLICATION_DATA, &data[..]));
            } else {
                let mut record = record;
                let (typ, range) = rx.open_in_place(&mut record).unwrap();
                assert_eq!((typ, &record[range]), (APPLICATION_DATA, &data[..]));
            }
        }
        assert_eq!((tx.seq(), rx.seq()), (5, 5));
    }

    #[test]
    fn records_sealed_with_either_library_open_with_the_other() {
        for (sealer, opener) in [
            (Backend::AwsLc, Backend::Ring),
            (Backend::Ring, Backend::AwsLc),
        ] {
            let mut tx = RecordKey::with_backend(secrets(4), 0, sealer).unwrap();
            let mut rx = RecordKey::with_backend(secrets(4), 0, opener).unwrap();
            let data = vec![0x33; 3000];
            let mut record = seal(&mut tx, APPLICATION_DATA, &data);
            let mut out = vec![0; record.len() - HEADER_LEN - TAG_LEN];
            let (typ, n) = rx.open_into(&record, &mut out).unwrap();
            assert_eq!((typ, &out[..n]), (APPLICATION_DATA, &data[..]));
            let mut gathered = vec![0; 5 + OVERHEAD];
            gathered[HEADER_LEN..HEADER_LEN + 5].copy_from_slice(b"short");
            tx.seal_gathered(HANDSHAKE, 5, &mut gathered).unwrap();
            let (typ, at) = rx.open_in_place(&mut gathered).unwrap();
            assert_eq!((typ, &gathered[at]), (HANDSHAKE, &b"short"[..]));
            record[HEADER_LEN] ^= 1;
            assert!(rx.open_in_place(&mut record).is_err());
        }
    }

    #[test]
    fn a_gathered_record_is_the_same_as_a_sealed_one() {
        let (mut direct, mut gathered) = pair();
        let data = b"twelve bytes";
        let sealed = seal(&mut direct, APPLICATION_DATA, data);
        let mut out = vec![0; data.len() + OVERHEAD];
        out[HEADER_LEN..HEADER_LEN + data.len()].copy_from_slice(data);
        let n = gathered
            .seal_gathered(APPLICATION_DATA, data.len(), &mut out)
            .unwrap();
        assert_eq!(&out[..n], &sealed[..]);
    }

    #[test]
    fn a_flipped_bit_or_a_replayed_record_is_refused() {
        let (mut tx, mut rx) = pair();
        let first = seal(&mut tx, APPLICATION_DATA, b"hello");
        for at in [0, 3, HEADER_LEN, first.len() - 1] {
            let mut rx = RecordKey::new(secrets(7), 0).unwrap();
            let mut flipped = first.clone();
            flipped[at] ^= 0x10;
            // A flipped header byte may already fail the header check.
            if let Ok(Some(_)) = record_len(&flipped) {
                assert!(rx.open_in_place(&mut flipped).is_err(), "flip at {at}");
            }
        }
        let mut ok = first.clone();
        rx.open_in_place(&mut ok).unwrap();
        let mut replayed = first.clone();
        assert!(rx.open_in_place(&mut replayed).is_err(), "replay");
    }

    #[test]
    fn record_headers_are_checked() {
        let cases: &[Case<Option<usize>>] = &[
            (&[], Ok(None)),
            (&[23, 3, 3, 0], Ok(None)),
            (&[23, 3, 3, 0, 17], Ok(None)),
            (&[23, 3, 3, 0, 16], Err(())),
            (&[22, 3, 3, 0, 17], Err(())),
            (&[20, 3, 3, 0, 1, 1], Err(())),
            (&[23, 3, 1, 0, 17], Err(())),
            (&[23, 3, 3, 0x41, 0x01], Err(())),
            (&[23, 3, 3, 0x41, 0x00], Ok(None)),
        ];
        for (head, want) in cases {
            let got = record_len(head).map_err(|_| ());
            assert_eq!(&got, want, "{head:?}");
        }
        let mut whole = vec![23, 3, 3, 0, 17];
        whole.resize(22, 0);
        assert_eq!(record_len(&whole).unwrap(), Some(22));
    }

    #[test]
    fn inner_content_type_and_padding() {
        let cases: &[Case<(u8, usize)>] = &[
            (&[23], Ok((23, 0))),
            (&[1, 2, 23], Ok((23, 2))),
            (&[1, 2, 21, 0, 0, 0], Ok((21, 2))),
            (&[0, 0, 0], Err(())),
            (&[], Err(())),
        ];
        for (plain, want) in cases {
            assert_eq!(&inner_type(plain).map_err(|_| ()), want, "{plain:?}");
        }
        let mut long = vec![1; MAX_DATA + 1];
        long.push(23);
        assert!(inner_type(&long).is_err());
        // Padding may not take a record past 2^14 + 1 bytes either.
        let mut padded = vec![1; 10];
        padded.push(23);
        padded.resize(MAX_DATA + 2, 0);
        assert!(inner_type(&padded).is_err());
        padded.pop();
        assert_eq!(inner_type(&padded).unwrap(), (23, 10));
    }

    #[test]
    fn key_updates_are_the_only_post_handshake_message() {
        let cases: &[Case<bool>] = &[
            (&KEY_UPDATE_NOT_REQUESTED, Ok(false)),
            (&[24, 0, 0, 1, 1], Ok(true)),
            (&[24, 0, 0, 1, 2], Err(())),
            (&[24, 0, 0, 2, 0, 0], Err(())),
            (&[24, 0, 0, 1], Err(())),
            // Two messages, or anything after a key update.
            (&[24, 0, 0, 1, 0, 24, 0, 0, 1, 0], Err(())),
            (&[24, 0, 0, 1, 0, 4, 0, 0, 0], Err(())),
            // A session ticket: our servers issue none.
            (&[4, 0, 0, 2, 9, 9], Err(())),
            (&[4, 0, 0, 2, 9, 9, 24, 0, 0, 1, 0], Err(())),
            (&[1, 0, 0, 0], Err(())),
            // An empty handshake record (RFC 8446 §5.1: the connection ends).
            (&[], Err(())),
        ];
        for (data, want) in cases {
            assert_eq!(&key_update(data).map_err(|_| ()), want, "{data:?}");
        }
    }

    #[test]
    fn alerts() {
        assert!(alert(&CLOSE_NOTIFY).is_ok());
        assert_eq!(
            alert(&[2, 20]).unwrap_err().kind(),
            io::ErrorKind::ConnectionAborted
        );
        assert_eq!(alert(&[1]).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn chacha20_poly1305_seals_and_opens() {
        let chacha = || ConnectionTrafficSecrets::Chacha20Poly1305 {
            key: AeadKey::from([3; 32]),
            iv: Iv::from([3; 12]),
        };
        let (mut tx, mut rx) = (
            RecordKey::new(chacha(), 9).unwrap(),
            RecordKey::new(chacha(), 9).unwrap(),
        );
        let mut record = seal(&mut tx, HANDSHAKE, &KEY_UPDATE_NOT_REQUESTED);
        let (typ, range) = rx.open_in_place(&mut record).unwrap();
        assert_eq!(
            (typ, &record[range]),
            (HANDSHAKE, &KEY_UPDATE_NOT_REQUESTED[..])
        );
    }
}
