//! Handshake messages ([`crate::handshake`]): the message decoders, and both sides
//! of the exchange driven over an in-memory stream.

use bytes::BufMut;

use super::{Target, Wire, random_splits, rng_for, run_now};
use crate::addr::LogicAddr;
use crate::handshake::{
    AcceptorId, ConnKind, Hello, MAX_MESSAGE, MAX_SECRETS, NONCE, accept_inner, decode_challenge,
    decode_hello, decode_verdict, dial_inner, encode_hello,
};

/// The handshake target.
pub const TARGET: Target = Target {
    name: "handshake",
    run,
    seeds,
};

const SECRET: &[u8] = b"fuzz";

/// Decodes `data` as each handshake message (a hello must re-encode to the same
/// hello), then plays it as the byte stream an acceptor and a dialer read: each must
/// finish at once (the input ends, nothing to wait for) without panicking, and write
/// no more than its own messages.
pub fn run(data: &[u8]) {
    if let Ok((hello, nonce)) = decode_hello(data) {
        let again = decode_hello(&encode_hello(&hello, &nonce)).expect("a re-encoded hello");
        assert_eq!(again, (hello, nonce));
    }
    if let Ok((_, nonce, macs)) = decode_challenge(data) {
        assert_eq!(nonce.len(), NONCE);
        assert!(!macs.is_empty() && macs.len() % 32 == 0 && macs.len() <= 32 * MAX_SECRETS);
    }
    let _ = decode_verdict(data);

    let cuts = random_splits(&mut rng_for(data), data.len());
    let mut wire = Wire::new(data, cuts);
    let _ = run_now(accept_inner(&mut wire, &[SECRET], acceptor()));
    assert!(
        wire.written <= 2 + MAX_MESSAGE,
        "acceptor wrote {}",
        wire.written
    );
    let mut wire = Wire::new(data, Vec::new());
    let _ = run_now(dial_inner(&mut wire, &[SECRET], &hello(), acceptor().logic));
    assert!(
        wire.written <= 2 * (2 + MAX_MESSAGE),
        "dialer wrote {}",
        wire.written
    );
}

fn hello() -> Hello {
    Hello {
        kind: ConnKind::Frames,
        logic: "1.1.1".parse::<LogicAddr>().expect("valid address"),
        incarnation: 7,
        listen: "127.0.0.1:4000".parse().expect("valid socket address"),
    }
}

fn acceptor() -> AcceptorId {
    AcceptorId {
        logic: "1.2.1".parse::<LogicAddr>().expect("valid address"),
        incarnation: 9,
    }
}

/// Hellos, challenges, proofs and verdicts, bare and as the framed stream a peer
/// sends (`u16 len | body` each).
pub fn seeds() -> Vec<Vec<u8>> {
    let framed = |body: &[u8]| {
        let mut m = Vec::with_capacity(2 + body.len());
        m.put_u16(body.len() as u16);
        m.put_slice(body);
        m
    };
    let nonce = [3u8; NONCE];
    let mut v6 = hello();
    v6.kind = ConnKind::Streams;
    v6.listen = "[::1]:65535".parse().expect("valid socket address");
    let hellos = [hello(), v6].map(|h| encode_hello(&h, &nonce).to_vec());
    let mut challenge = Vec::new();
    challenge.put_u32(acceptor().logic.raw());
    challenge.put_u64(acceptor().incarnation);
    challenge.put_slice(&nonce);
    challenge.put_slice(&[5u8; 32]);
    let proof = [6u8; 32];
    let mut seeds = hellos.to_vec();
    seeds.extend([challenge.clone(), vec![0], vec![1]]);
    seeds.push([framed(&hellos[0]), framed(&proof)].concat());
    seeds.push([framed(&challenge), framed(&[0])].concat());
    seeds
}
