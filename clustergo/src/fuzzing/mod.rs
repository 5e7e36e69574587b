//! Fuzz target bodies: each is a plain `fn(&[u8])` that feeds the bytes to decoders of
//! network input and panics if an invariant breaks (a panic inside the decoder, a
//! buffer that grows past its limit, a decode → encode → decode that does not come
//! back to the same value).
//!
//! Two drivers share them, so a target is written once: the cargo-fuzz crate under
//! `fuzz/` (coverage-guided, long runs on nightly) and `tests/fuzz.rs` (a bounded
//! mutation loop from [`Target::seeds`], in every test run on stable). Not an API:
//! compiled only with the `fuzzing` feature.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::codec::Decoder;

pub mod discovery;
pub mod frame;
#[cfg(feature = "kcp")]
pub mod gate_kcp;
pub mod gate_tcp;
#[cfg(feature = "ws")]
pub mod gate_ws;
#[cfg(feature = "go-compat")]
pub mod go_handshake;
#[cfg(feature = "go-compat")]
pub mod go_rpc;
pub mod handshake;
pub mod rpc;
pub mod rpc_stream;
#[cfg(feature = "go-compat")]
pub mod smux;
pub mod tls_record;

/// One fuzz target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The name the cargo-fuzz binary and the stable test use.
    pub name: &'static str,
    /// The body: panics if an invariant breaks.
    pub run: fn(&[u8]),
    /// Valid encodings to start mutating from.
    pub seeds: fn() -> Vec<Vec<u8>>,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    frame::TARGET,
    rpc::TARGET,
    rpc_stream::TARGET,
    handshake::TARGET,
    gate_tcp::TARGET,
    #[cfg(feature = "ws")]
    gate_ws::TARGET,
    #[cfg(feature = "kcp")]
    gate_kcp::TARGET,
    discovery::TARGET,
    #[cfg(feature = "go-compat")]
    go_handshake::TARGET,
    #[cfg(feature = "go-compat")]
    go_rpc::TARGET,
    #[cfg(feature = "go-compat")]
    smux::TARGET,
    tls_record::TARGET,
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Slack over a decoder's own limit that a read buffer may reach: `BytesMut` grows by
/// doubling and keeps a small original capacity, so this is what "bounded" allows.
const BUFFER_SLACK: usize = 128 * 1024;

/// A deterministic pseudo-random source derived from the input, so that the same
/// input always takes the same split points (a crash found by libFuzzer replays).
pub(crate) fn rng_for(data: &[u8]) -> fastrand::Rng {
    // FNV-1a.
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for &b in data {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    fastrand::Rng::with_seed(h)
}

/// What a streaming decoder made of a byte stream.
#[derive(Debug, PartialEq)]
pub(crate) struct Decoded<T> {
    /// Items, in order.
    pub(crate) items: Vec<T>,
    /// Whether the stream ended in an error (at `decode_eof` included).
    pub(crate) failed: bool,
}

/// Feeds `data` to `decoder` in chunks ending at `splits` (empty: all at once), the way
/// `FramedRead` does, and checks after each call that the read buffer stays within
/// `max_buffer` plus what was fed (a declared length must not make the decoder
/// reserve more than its limit).
pub(crate) fn feed<D: Decoder>(
    decoder: &mut D,
    data: &[u8],
    splits: &[usize],
    max_buffer: usize,
) -> Decoded<D::Item> {
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut at = 0;
    for end in splits.iter().copied().chain([data.len()]) {
        let end = end.clamp(at, data.len());
        buf.extend_from_slice(&data[at..end]);
        at = end;
        loop {
            let result = decoder.decode(&mut buf);
            check_buffer(&buf, at, max_buffer);
            match result {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(_) => {
                    return Decoded {
                        items,
                        failed: true,
                    };
                }
            }
        }
    }
    loop {
        let result = decoder.decode_eof(&mut buf);
        check_buffer(&buf, at, max_buffer);
        match result {
            Ok(Some(item)) => items.push(item),
            Ok(None) => {
                return Decoded {
                    items,
                    failed: false,
                };
            }
            Err(_) => {
                return Decoded {
                    items,
                    failed: true,
                };
            }
        }
    }
}

fn check_buffer(buf: &BytesMut, fed: usize, max_buffer: usize) {
    let bound = 2 * (fed + max_buffer) + BUFFER_SLACK;
    assert!(
        buf.capacity() <= bound,
        "read buffer grew to {} bytes after {fed} bytes fed (limit {max_buffer})",
        buf.capacity()
    );
}

/// Random split points for `data`, from `rng`: sometimes none, sometimes every byte.
pub(crate) fn random_splits(rng: &mut fastrand::Rng, len: usize) -> Vec<usize> {
    match rng.u8(..4) {
        0 => (1..len).collect(),
        _ => {
            let mut s: Vec<usize> = (0..rng.usize(..8)).map(|_| rng.usize(..=len)).collect();
            s.sort_unstable();
            s
        }
    }
}

/// Decodes `data` all at once and at random split points and checks both agree:
/// a stream decoder must not depend on how reads happened to be cut.
pub(crate) fn feed_split<D, F>(new: F, data: &[u8], max_buffer: usize) -> Decoded<D::Item>
where
    D: Decoder,
    D::Item: PartialEq + std::fmt::Debug,
    F: Fn() -> D,
{
    let whole = feed(&mut new(), data, &[], max_buffer);
    let splits = random_splits(&mut rng_for(data), data.len());
    let split = feed(&mut new(), data, &splits, max_buffer);
    assert_eq!(
        whole, split,
        "decoding depends on read boundaries {splits:?}"
    );
    whole
}

/// Runs `fut` to completion without a runtime. Over a [`Wire`] nothing can wait, so a
/// future still pending after a few polls is stuck: that fails the target.
pub(crate) fn run_now<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..64 {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("a future over an in-memory stream never finished");
}

/// [`feed_split`], then checks every item re-encodes (with `encode`) to bytes that
/// decode to that item alone.
pub(crate) fn feed_round_trip<D, F>(
    new: F,
    data: &[u8],
    max_buffer: usize,
    encode: impl Fn(D::Item) -> BytesMut,
) -> Decoded<D::Item>
where
    D: Decoder,
    D::Item: Clone + PartialEq + std::fmt::Debug,
    F: Fn() -> D,
{
    let decoded = feed_split(&new, data, max_buffer);
    for item in &decoded.items {
        let wire = encode(item.clone());
        let again = feed_split(&new, &wire, max_buffer);
        assert_eq!(
            (&again.items[..], again.failed),
            (&[item.clone()][..], false)
        );
    }
    decoded
}

/// An in-memory stream: reads come from the input, cut at the given offsets (so a
/// reader sees the bytes arrive in pieces), then EOF; writes are counted.
#[derive(Debug)]
pub(crate) struct Wire<'a> {
    input: &'a [u8],
    /// Bytes read so far.
    pub(crate) pos: usize,
    cuts: VecDeque<usize>,
    /// Bytes written so far.
    pub(crate) written: usize,
}

impl<'a> Wire<'a> {
    /// A stream reading `input`, each read ending at the next of `cuts`.
    pub(crate) fn new(input: &'a [u8], mut cuts: Vec<usize>) -> Self {
        cuts.sort_unstable();
        Self {
            input,
            pos: 0,
            cuts: cuts.into(),
            written: 0,
        }
    }
}

impl AsyncRead for Wire<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let pos = self.pos;
        while self.cuts.front().is_some_and(|&c| c <= pos) {
            self.cuts.pop_front();
        }
        let end = self
            .cuts
            .front()
            .map_or(self.input.len(), |&c| c.min(self.input.len()));
        let n = buf.remaining().min(end - pos);
        buf.put_slice(&self.input[pos..pos + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Wire<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written += buf.len();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    /// Trusts a declared length and reserves it: what the buffer check must catch.
    struct Greedy;

    impl Decoder for Greedy {
        type Item = ();
        type Error = io::Error;

        fn decode(&mut self, src: &mut BytesMut) -> Result<Option<()>, io::Error> {
            if src.len() >= 4 {
                src.reserve(u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize);
            }
            Ok(None)
        }
    }

    #[test]
    #[should_panic(expected = "read buffer grew")]
    fn a_reservation_past_the_limit_fails_the_target() {
        feed(&mut Greedy, &[0, 0x10, 0, 0], &[], 1024);
    }

    #[test]
    fn a_reservation_within_the_limit_passes() {
        feed(&mut Greedy, &[0, 0, 4, 0], &[2], 1024);
    }

    #[test]
    fn wire_reads_end_at_the_cuts_then_eof() {
        let mut wire = Wire::new(b"abcdefg", vec![5, 2, 99]);
        let mut reads = Vec::new();
        run_now(async {
            loop {
                let mut buf = [0u8; 16];
                let n = wire.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                reads.push(buf[..n].to_vec());
            }
        });
        assert_eq!(reads, [&b"ab"[..], b"cde", b"fg"]);
        assert_eq!(wire.pos, 7);
    }
}
