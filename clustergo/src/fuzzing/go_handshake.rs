//! The Go seed's handshake (`gocompat::handshake`): the hello decoder, and both
//! sides over an in-memory stream.

use super::{Target, Wire, random_splits, rng_for, run_now};
use crate::gocompat::GoKey;
use crate::gocompat::handshake::{
    GoHello, MAX_HELLO, decode_hello, dial, encode_hello, read_hello,
};

/// The Go handshake target.
pub const TARGET: Target = Target {
    name: "go_handshake",
    run,
    seeds,
};

/// Decodes `data` as a hello body (one that decodes re-encodes to the same hello),
/// then plays it as what a Go-dialect acceptor and dialer read: each finishes at
/// once, the acceptor having read no more than its cap.
pub fn run(data: &[u8]) {
    let key = GoKey::default();
    if let Ok(hello) = decode_hello(&key, data) {
        let again = encode_hello(&key, &[3; 16], &hello);
        assert_eq!(
            decode_hello(&key, &again[4..]).expect("a re-encoded hello"),
            hello
        );
    }
    let cuts = random_splits(&mut rng_for(data), data.len());
    let mut wire = Wire::new(data, cuts);
    if run_now(read_hello(&mut wire, &key)).is_ok() {
        assert!(data.len() >= 4 + 32);
    }
    assert_eq!(wire.written, 0, "the acceptor reads before it answers");
    assert!(
        wire.pos <= 4 + MAX_HELLO,
        "the acceptor read {} bytes",
        wire.pos
    );
    let mut wire = Wire::new(data, Vec::new());
    let _ = run_now(dial(&mut wire, &key, &hello()));
    assert!(
        wire.written <= 4 + MAX_HELLO,
        "dialer wrote {}",
        wire.written
    );
}

fn hello() -> GoHello {
    GoHello {
        logic: "1.2.1".parse().expect("valid address"),
        net_addr: "127.0.0.1:7201".into(),
        is_stream: false,
    }
}

/// Whole hellos (frame and stream connections), and a body alone.
pub fn seeds() -> Vec<Vec<u8>> {
    let key = GoKey::default();
    let frames = encode_hello(&key, &[1; 16], &hello());
    let streams = encode_hello(
        &key,
        &[2; 16],
        &GoHello {
            is_stream: true,
            ..hello()
        },
    );
    vec![frames[4..].to_vec(), frames, streams]
}
