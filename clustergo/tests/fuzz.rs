//! Bounded mutation fuzzing, on stable, in every test run: each target of
//! `clustergo::fuzzing` gets its seeds (valid encodings) and then
//! `CLUSTERGO_FUZZ_ITERS` (default 100 000) inputs mutated from them by a
//! deterministic engine: bit flips, byte edits, inserts, deletes, length-field
//! tweaks, truncation, splicing. A failing input is printed in hex so that it can
//! become a regression test. `CLUSTERGO_FUZZ_SEED` picks another deterministic run.
//!
//! The coverage-guided, open-ended counterpart is the cargo-fuzz crate under `fuzz/`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use clustergo::fuzzing::{TARGETS, Target, target};

const DEFAULT_ITERS: u64 = 100_000;
/// Inputs grow by inserts and splices; past this they are cut back.
const MAX_INPUT: usize = 4096;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// Runs `name`'s seeds, then the mutation loop; panics with the failing input.
fn fuzz(name: &str) {
    let target = target(name).unwrap_or_else(|| panic!("no fuzz target {name:?}"));
    let iters = env_u64("CLUSTERGO_FUZZ_ITERS", DEFAULT_ITERS);
    let base = env_u64("CLUSTERGO_FUZZ_SEED", 0x5eed);
    let seeds = (target.seeds)();
    assert!(!seeds.is_empty(), "{name} has no seeds");
    for s in &seeds {
        check(target, s, "seed");
    }
    let mut rng = fastrand::Rng::with_seed(base ^ fnv(name.as_bytes()));
    let mut input = Vec::new();
    for i in 0..iters {
        // Mostly start again from a seed; sometimes keep mutating the last input, so
        // that several mutations stack up.
        if input.is_empty() || rng.u8(..4) != 0 {
            input.clone_from(&seeds[rng.usize(..seeds.len())]);
        }
        let edits = if rng.bool() { 1 } else { 2 + rng.usize(..6) };
        for _ in 0..edits {
            mutate(&mut rng, &mut input, &seeds);
        }
        input.truncate(MAX_INPUT);
        check(
            target,
            &input,
            &format!("iteration {i} of CLUSTERGO_FUZZ_SEED={base}"),
        );
    }
}

fn check(target: &Target, input: &[u8], what: &str) {
    if catch_unwind(AssertUnwindSafe(|| (target.run)(input))).is_err() {
        panic!(
            "fuzz target {} failed on {what}, {} bytes: {}",
            target.name,
            input.len(),
            hex(input)
        );
    }
}

/// One random edit of `input`.
fn mutate(rng: &mut fastrand::Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    let len = input.len();
    match rng.u8(..10) {
        // Flip one bit.
        0 if len > 0 => input[rng.usize(..len)] ^= 1 << rng.u8(..8),
        // Set a byte to a random or boundary value.
        1 if len > 0 => input[rng.usize(..len)] = interesting_byte(rng),
        // Insert a few bytes.
        2 => {
            let at = rng.usize(..=len);
            let n = 1 + rng.usize(..8);
            input.splice(at..at, (0..n).map(|_| interesting_byte(rng)));
        }
        // Delete a range.
        3 if len > 0 => {
            let at = rng.usize(..len);
            let n = 1 + rng.usize(..(len - at).min(16));
            input.drain(at..at + n);
        }
        // Overwrite a big-endian length-like field with a boundary value.
        4 if len > 0 => {
            let width = [1, 2, 4, 8][rng.usize(..4)].min(len);
            let at = rng.usize(..=len - width);
            let value = match rng.u8(..6) {
                0 => 0,
                1 => len as u64,
                2 => (len as u64).wrapping_sub(at as u64 + width as u64),
                3 => u64::MAX,
                4 => 1 << (rng.u32(..(8 * width as u32).min(63))),
                _ => rng.u64(..),
            };
            let value = value.wrapping_add(rng.u64(..3)).wrapping_sub(1);
            input[at..at + width].copy_from_slice(&value.to_be_bytes()[8 - width..]);
        }
        // Nudge a byte up or down (a length off by one).
        5 if len > 0 => {
            let at = rng.usize(..len);
            input[at] = if rng.bool() {
                input[at].wrapping_add(1)
            } else {
                input[at].wrapping_sub(1)
            };
        }
        // Truncate.
        6 if len > 0 => input.truncate(rng.usize(..len)),
        // Splice in a piece of another seed.
        7 => {
            let other = &seeds[rng.usize(..seeds.len())];
            let from = rng.usize(..=other.len());
            let to = from + rng.usize(..=other.len() - from);
            let at = rng.usize(..=len);
            input.splice(at..at, other[from..to].iter().copied());
        }
        // Append a whole seed (a stream of several messages).
        8 => input.extend_from_slice(&seeds[rng.usize(..seeds.len())]),
        // Repeat a range.
        _ if len > 0 => {
            let at = rng.usize(..len);
            let n = 1 + rng.usize(..(len - at).min(32));
            let piece = input[at..at + n].to_vec();
            input.splice(at..at, piece);
        }
        _ => input.push(rng.u8(..)),
    }
}

fn interesting_byte(rng: &mut fastrand::Rng) -> u8 {
    match rng.u8(..4) {
        0 => [0, 1, 0x7f, 0x80, 0xff, b'.', b':', b'{'][rng.usize(..8)],
        _ => rng.u8(..),
    }
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Inputs that once failed a target, each with what it found.
const REGRESSIONS: &[(&str, &str, &str)] = &[
    (
        "gate_kcp",
        "a data segment with fragment number 255: the kcp crate's `frg + 1` in a u8 \
         panicked in debug builds (fixed: kcp is built without overflow checks)",
        "0000000051ff00010000000000000000000000000f0000000000000b6c6f67696e3a616c6963650000\
         0000510000010000000001000000000000002c000000000000280707070707070707070707070707\
         0707070707070707070707070707070707070707070707070707",
    ),
    (
        "gate_kcp",
        "an ack whose timestamp is far from the session's clock: the kcp crate's \
         `later as i32 - earlier as i32` panicked the gate's receive loop in debug builds",
        "09000000510000010000000000000000000000000f0000000000000b6c6f67696e3a616c6963650900\
         0000510000010000000001000000000000002c000000000000280707070707070707070707070707\
         0707070707070707070707070707070707070707070707070707090000005200000100000080000000\
         000000000000000000090000005100000100000000020000000000000004000000ffffffff",
    ),
];

#[test]
fn regressions() {
    for (name, what, input) in REGRESSIONS {
        let input: Vec<u8> = (0..input.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&input[i..i + 2], 16).unwrap())
            .collect();
        let target = target(name).unwrap_or_else(|| panic!("no fuzz target {name:?}"));
        check(target, &input, what);
    }
}

/// With `CLUSTERGO_FUZZ_CORPUS=DIR` set, writes every target's seeds to
/// `DIR/<target>/seed-N`: the starting corpus for `cargo fuzz run <target>`.
#[test]
fn write_seed_corpus() {
    let Some(dir) = std::env::var_os("CLUSTERGO_FUZZ_CORPUS") else {
        return;
    };
    for t in TARGETS {
        let dir = std::path::Path::new(&dir).join(t.name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in (t.seeds)().iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
        }
    }
}

#[test]
fn every_target_is_run_here() {
    let names: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
    let mut want = vec![
        "frame",
        "rpc",
        "rpc_stream",
        "handshake",
        "gate_tcp",
        "gate_ws",
        "gate_kcp",
        "discovery",
    ];
    if cfg!(feature = "go-compat") {
        want.extend(["go_handshake", "go_rpc", "smux"]);
    }
    want.push("tls_record");
    assert_eq!(names, want);
}

#[test]
fn frame() {
    fuzz("frame");
}

#[test]
fn tls_record() {
    fuzz("tls_record");
}

#[test]
fn rpc() {
    fuzz("rpc");
}

#[test]
fn rpc_stream() {
    fuzz("rpc_stream");
}

#[test]
fn handshake() {
    fuzz("handshake");
}

#[test]
fn gate_tcp() {
    fuzz("gate_tcp");
}

#[cfg(feature = "ws")]
#[test]
fn gate_ws() {
    fuzz("gate_ws");
}

#[cfg(feature = "kcp")]
#[test]
fn gate_kcp() {
    fuzz("gate_kcp");
}

#[test]
fn discovery() {
    fuzz("discovery");
}

#[cfg(feature = "go-compat")]
#[test]
fn go_handshake() {
    fuzz("go_handshake");
}

#[cfg(feature = "go-compat")]
#[test]
fn go_rpc() {
    fuzz("go_rpc");
}

#[cfg(feature = "go-compat")]
#[test]
fn smux() {
    fuzz("smux");
}
