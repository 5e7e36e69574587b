//! The record layer of TLS node links (`tls/record.rs`): the framing of raw
//! bytes from the network, and what an authenticated peer could put inside a record
//! (the input sealed first, so the alert and post-handshake decoders see it).

use rustls::ConnectionTrafficSecrets;
use rustls::crypto::cipher::{AeadKey, Iv};

use super::Target;
use crate::tls::aead::Backend;
use crate::tls::record::{
    self, ALERT, APPLICATION_DATA, HANDSHAKE, HEADER_LEN, MAX_DATA, MAX_RECORD, OVERHEAD,
    RecordKey, TAG_LEN,
};

/// The TLS record target.
pub const TARGET: Target = Target {
    name: "tls_record",
    run,
    seeds,
};

/// The test key, in one of the two AEAD libraries.
fn key_in(backend: Backend) -> RecordKey {
    let secrets = ConnectionTrafficSecrets::Aes256Gcm {
        key: AeadKey::from([0x42; 32]),
        iv: Iv::from([0x24; 12]),
    };
    RecordKey::with_backend(secrets, 0, backend).expect("a valid key")
}

fn key() -> RecordKey {
    key_in(Backend::AwsLc)
}

/// (1) `data` as received bytes: records are framed within their limit, open
/// the same both ways (in place and into another buffer, with aws-lc-rs and with
/// ring) in sequence, and what
/// opens goes through the control decoders; (2) `data` as inner content type and
/// content of a record the peer sealed, the same way.
pub fn run(data: &[u8]) {
    let mut rest = data;
    // One opener per library: they must agree on every record.
    let (mut rx, mut rx2) = (key_in(Backend::AwsLc), key_in(Backend::Ring));
    while let Ok(Some(len)) = record::record_len(rest) {
        assert!(len <= MAX_RECORD && len > HEADER_LEN + TAG_LEN);
        match open_both_ways(&mut rx, &mut rx2, &rest[..len]) {
            Some(opened) => control(opened),
            None => break,
        }
        rest = &rest[len..];
    }

    let Some((&typ, content)) = data.split_first() else {
        return;
    };
    let content = &content[..content.len().min(MAX_DATA)];
    let (mut tx, mut rx, mut rx2) = (key(), key_in(Backend::Ring), key_in(Backend::AwsLc));
    let mut sealed = vec![0; content.len() + OVERHEAD];
    let n = tx.seal_into(typ, content, &mut sealed).expect("sealing");
    assert_eq!(n, sealed.len());
    assert_eq!(record::record_len(&sealed).ok(), Some(Some(n)));
    match open_both_ways(&mut rx, &mut rx2, &sealed) {
        Some(opened) => {
            if typ != 0 {
                assert_eq!(opened, (typ, content.to_vec()));
            }
            control(opened);
        }
        // Only a record with no content type (all zeros) is refused.
        None => assert!(typ == 0 && content.iter().all(|&b| b == 0)),
    }
}

/// Opens the whole record `record` into another buffer with `rx` and in place with
/// `rx2` (keys in step, in different libraries): the content type and data, the
/// same both ways, or `None` if both refuse it.
fn open_both_ways(rx: &mut RecordKey, rx2: &mut RecordKey, record: &[u8]) -> Option<(u8, Vec<u8>)> {
    let mut out = vec![0; record.len() - HEADER_LEN - TAG_LEN];
    let into = rx
        .open_into(record, &mut out)
        .map(|(t, n)| (t, out[..n].to_vec()));
    let mut copy = record.to_vec();
    let in_place = rx2
        .open_in_place(&mut copy)
        .map(|(t, at)| (t, copy[at].to_vec()));
    match (into, in_place) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b);
            Some(a)
        }
        (Err(_), Err(_)) => None,
        (a, b) => panic!("the two ways disagree: {a:?} / {b:?}"),
    }
}

/// An opened record's content through the decoder of its type.
fn control((typ, content): (u8, Vec<u8>)) {
    assert!(typ != 0 && content.len() <= MAX_DATA);
    match typ {
        ALERT => drop(record::alert(&content)),
        HANDSHAKE => drop(record::key_update(&content)),
        _ => {}
    }
}

/// Records as peers send them, and the control messages.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut tx = key();
    let mut wire = Vec::new();
    for (typ, data) in [
        (APPLICATION_DATA, &b"hello"[..]),
        (HANDSHAKE, &record::KEY_UPDATE_NOT_REQUESTED[..]),
        (ALERT, &record::CLOSE_NOTIFY[..]),
    ] {
        let mut sealed = vec![0; data.len() + OVERHEAD];
        tx.seal_into(typ, data, &mut sealed).expect("sealing");
        wire.extend_from_slice(&sealed);
    }
    vec![
        wire,
        [&[HANDSHAKE][..], &record::KEY_UPDATE_NOT_REQUESTED].concat(),
        vec![HANDSHAKE, 24, 0, 0, 1, 1],
        [&[ALERT][..], &record::CLOSE_NOTIFY].concat(),
        vec![ALERT, 2, 40],
        vec![APPLICATION_DATA, 1, 2, 3],
    ]
}
