//! A TLS connection to another node after its handshake: a reading half and a
//! writing half that protect records themselves (`record.rs`) with the keys
//! rustls derived, and share nothing on the data path. So the two halves of a
//! link run in separate tasks (and on separate cores) without a lock, unlike a
//! split rustls stream.
//!
//! Buffers: the reader reads up to 64 KiB and a record per syscall into a buffer
//! it keeps (it starts at 8 KiB and grows while reads fill it, to 80 KiB); the
//! writer queues sealed records until a flush or until 64 KiB wait, then writes
//! them in one call (its buffer starts at one record and grows to 160 KiB at
//! most). A connection that never carried bulk data keeps 8 KiB to read and one
//! record's room (16.4 KiB) to write.

use std::io::{self, IoSlice};
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use parking_lot::Mutex;
use rustls::CipherSuite;
use rustls::client::ClientConnectionData;
use rustls::kernel::KernelConnection;
use rustls::pki_types::CertificateDer;
use rustls::server::ServerConnectionData;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::handshake::Established;

use super::record::{
    self, APPLICATION_DATA, CLOSE_NOTIFY, HANDSHAKE, HEADER_LEN, KEY_UPDATE_NOT_REQUESTED,
    MAX_DATA, MAX_RECORD, OVERHEAD, RecordKey, TAG_LEN,
};

/// rustls's key schedule after the handshake: it derives each direction's next
/// key on a key update.
pub(crate) enum Kernel {
    Client(KernelConnection<ClientConnectionData>),
    Server(KernelConnection<ServerConnectionData>),
}

/// What the two halves share: the key schedule, and whether the peer asked us
/// to update our sending key. Touched only on key updates.
pub(crate) struct KeySchedule {
    kernel: Mutex<Kernel>,
    peer_asked_update: AtomicBool,
}

impl KeySchedule {
    pub(crate) fn new(kernel: Kernel) -> Arc<Self> {
        Arc::new(Self {
            kernel: Mutex::new(kernel),
            peer_asked_update: AtomicBool::new(false),
        })
    }

    fn next_key(&self, sending: bool) -> io::Result<RecordKey> {
        let mut kernel = self.kernel.lock();
        let next = match (&mut *kernel, sending) {
            (Kernel::Client(k), true) => k.update_tx_secret(),
            (Kernel::Client(k), false) => k.update_rx_secret(),
            (Kernel::Server(k), true) => k.update_tx_secret(),
            (Kernel::Server(k), false) => k.update_rx_secret(),
        };
        let (seq, secrets) = next.map_err(|e| io::Error::other(format!("tls: key update: {e}")))?;
        RecordKey::new(secrets, seq)
    }
}

/// The reader starts with a buffer this big…
const READ_START: usize = 8 * 1024;
/// …and grows it while reads fill it, up to this (64 KiB and a whole record).
const READ_MAX: usize = 64 * 1024 + MAX_RECORD;

/// The reading half: opens records as the caller reads.
pub(crate) struct TlsRead<R> {
    io: R,
    key: RecordKey,
    keys: Arc<KeySchedule>,
    /// Storage, all initialized; `buf[start..end]` are received bytes not yet
    /// opened.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Opened data not yet handed out (within `buf`, before `start`).
    plain: Range<usize>,
    /// The peer's close_notify arrived: the end of its data.
    closed: bool,
    /// The last read filled the buffer: the next one gets a bigger one.
    last_read_filled: bool,
    /// A read failed: every later one fails too (a record that did not open is
    /// never skipped, and the next one would open under its sequence number).
    failed: Option<io::ErrorKind>,
}

impl<R> std::fmt::Debug for TlsRead<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsRead")
            .field("key", &self.key)
            .field("buffered", &(self.end - self.start))
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin> TlsRead<R> {
    /// A reader over `io`. The handshake left `opened` (data), `received`
    /// (records not yet opened) and whether the peer's close_notify came already.
    pub(crate) fn new(
        io: R,
        key: RecordKey,
        keys: Arc<KeySchedule>,
        opened: &[u8],
        received: &[u8],
        closed: bool,
    ) -> Self {
        let (p, r) = (opened.len(), received.len());
        let mut buf = vec![0; READ_START.max(p + r)];
        buf[..p].copy_from_slice(opened);
        buf[p..p + r].copy_from_slice(received);
        Self {
            io,
            key,
            keys,
            buf,
            start: p,
            end: p + r,
            plain: 0..p,
            closed,
            last_read_filled: false,
            failed: None,
        }
    }

    /// Acts on a record that is not application data: an alert or post-handshake
    /// messages.
    fn control(&mut self, typ: u8, data: &[u8]) -> io::Result<()> {
        match typ {
            record::ALERT => {
                record::alert(data)?;
                self.closed = true;
            }
            HANDSHAKE => {
                let requested = record::key_update(data)?;
                self.key = self.keys.next_key(false)?;
                if requested {
                    self.keys.peer_asked_update.store(true, Ordering::Release);
                }
            }
            t => return Err(record::bad(&format!("unexpected content type {t}"))),
        }
        Ok(())
    }

    /// Opens the whole record at `buf[start..start + len]`: straight into `out`'s
    /// initialized room when it fits, else where it lies (then its data waits in
    /// `plain`).
    fn open(&mut self, len: usize, out: &mut ReadBuf<'_>) -> io::Result<()> {
        let at = self.start..self.start + len;
        self.start += len;
        let inner = len - HEADER_LEN - TAG_LEN;
        let filled = out.filled().len();
        if out.initialized().len() - filled >= inner {
            let room = &mut out.initialized_mut()[filled..filled + inner];
            let (typ, n) = self.key.open_into(&self.buf[at], room)?;
            if typ == APPLICATION_DATA {
                out.advance(n);
            } else {
                let data = room[..n].to_vec();
                self.control(typ, &data)?;
            }
        } else {
            let (typ, data) = self.key.open_in_place(&mut self.buf[at.clone()])?;
            let data = at.start + data.start..at.start + data.end;
            if typ == APPLICATION_DATA {
                self.plain = data;
            } else {
                let data = self.buf[data].to_vec();
                self.control(typ, &data)?;
            }
        }
        Ok(())
    }

    /// Makes room to read the rest of the record at `start` (or the next one),
    /// and more room if the last read filled the buffer.
    fn make_room(&mut self) -> io::Result<()> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        let want = record::declared_len(&self.buf[self.start..self.end])?.unwrap_or(HEADER_LEN);
        let grow = std::mem::take(&mut self.last_read_filled) && self.buf.len() < READ_MAX;
        if grow || self.end == self.buf.len() || self.buf.len() - self.start < want {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if grow || self.buf.len() < want {
            let grown = (self.buf.len() * 2).min(READ_MAX).max(want);
            self.buf.resize(grown, 0);
        }
        Ok(())
    }

    fn poll_read_records(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = out.filled().len();
        loop {
            if !self.plain.is_empty() {
                let n = self.plain.len().min(out.remaining());
                out.put_slice(&self.buf[self.plain.start..self.plain.start + n]);
                self.plain.start += n;
            }
            if out.remaining() == 0 || self.closed {
                return Poll::Ready(Ok(()));
            }
            if let Some(len) = record::record_len(&self.buf[self.start..self.end])? {
                self.open(len, out)?;
                continue;
            }
            if out.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
            self.make_room()?;
            let mut room = ReadBuf::new(&mut self.buf[self.end..]);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut room))?;
            let n = room.filled().len();
            self.last_read_filled = room.remaining() == 0;
            if n == 0 {
                let what = if self.start == self.end {
                    "tls: the peer closed the connection without close_notify"
                } else {
                    "tls: the connection ended inside a record"
                };
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::UnexpectedEof, what)));
            }
            self.end += n;
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for TlsRead<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(kind) = this.failed {
            return Poll::Ready(Err(io::Error::new(
                kind,
                "tls: the connection failed earlier",
            )));
        }
        let result = ready!(this.poll_read_records(cx, buf));
        if let Err(e) = &result {
            this.failed = Some(e.kind());
        }
        Poll::Ready(result)
    }
}

/// Pieces shorter than this are copied into a record shared with their
/// neighbours; longer ones are sealed straight from the caller's bytes.
const GATHER: usize = 1024;
/// Data taken per write call.
const ACCEPT_MAX: usize = 64 * 1024;
/// Sealed bytes are written without waiting for a flush once this many wait.
const SEND_AT: usize = 64 * 1024;
/// What the writer's buffer grows to at most: what may be queued, a write's
/// worth of records and room for one more (it grows past only for a key update
/// on top, by a few bytes).
const OUT_MAX: usize = SEND_AT + ACCEPT_MAX + 2 * MAX_RECORD;
/// A sending key is replaced after this many records (2^24, ~256 GiB of full
/// records): below AES-GCM's confidentiality limit of 2^24.5 records (RFC 8446
/// §5.5), which rustls would otherwise enforce.
pub(crate) const REKEY_AT: u64 = 1 << 24;

/// The writing half: seals what the caller writes into records and queues them.
pub(crate) struct TlsWrite<W> {
    io: W,
    key: RecordKey,
    keys: Arc<KeySchedule>,
    /// Storage, all initialized; `out[sent..filled]` waits for the socket.
    out: Vec<u8>,
    sent: usize,
    filled: usize,
    /// Records after which the sending key is replaced ([`REKEY_AT`]).
    rekey_at: u64,
    /// close_notify is queued: nothing more may be written.
    closing: bool,
}

impl<W> TlsWrite<W> {
    /// Sealed bytes waiting for the socket.
    fn queued(&self) -> usize {
        self.filled - self.sent
    }
}

impl<W> std::fmt::Debug for TlsWrite<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsWrite")
            .field("key", &self.key)
            .field("queued", &self.queued())
            .field("closing", &self.closing)
            .finish_non_exhaustive()
    }
}

impl<W: AsyncWrite + Unpin> TlsWrite<W> {
    pub(crate) fn new(io: W, key: RecordKey, keys: Arc<KeySchedule>) -> Self {
        Self {
            io,
            key,
            keys,
            out: Vec::new(),
            sent: 0,
            filled: 0,
            rekey_at: REKEY_AT,
            closing: false,
        }
    }

    #[cfg(test)]
    pub(crate) fn rekey_after(&mut self, records: u64) {
        self.rekey_at = records;
    }

    /// Makes `n` bytes of room after `filled`.
    fn reserve(&mut self, n: usize) {
        if self.sent == self.filled {
            (self.sent, self.filled) = (0, 0);
        }
        if self.out.len() - self.filled < n && self.sent > 0 {
            self.out.copy_within(self.sent..self.filled, 0);
            (self.sent, self.filled) = (0, self.filled - self.sent);
        }
        if self.out.len() - self.filled < n {
            let need = self.filled + n;
            let grown = (self.out.len() * 2).min(OUT_MAX).max(need);
            self.out.resize(grown, 0);
        }
    }

    /// Queues one record of `data` with inner type `typ`.
    fn seal(&mut self, typ: u8, data: &[u8]) -> io::Result<()> {
        self.reserve(data.len() + OVERHEAD);
        self.filled += self
            .key
            .seal_into(typ, data, &mut self.out[self.filled..])?;
        Ok(())
    }

    /// Sends a key update and moves to the next sending key, if the peer asked
    /// for it or this key has protected [`REKEY_AT`] records.
    fn rekey_if_due(&mut self) -> io::Result<()> {
        let asked = self.keys.peer_asked_update.load(Ordering::Acquire)
            && self.keys.peer_asked_update.swap(false, Ordering::AcqRel);
        if asked || self.key.seq() >= self.rekey_at {
            // The next key first: if rustls refused it, nothing would claim an
            // update that did not happen.
            let next = self.keys.next_key(true)?;
            self.seal(HANDSHAKE, &KEY_UPDATE_NOT_REQUESTED)?;
            self.key = next;
        }
        Ok(())
    }

    /// Seals up to [`ACCEPT_MAX`] bytes of `bufs`; returns how many.
    fn seal_slices(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut taken = 0;
        // The data so far of a record being gathered from short pieces: copied in
        // place at `out[filled + HEADER_LEN..]` (nothing else is queued meanwhile).
        let mut gathered: Option<usize> = None;
        for piece in bufs {
            let mut piece: &[u8] = piece;
            while !piece.is_empty() && taken < ACCEPT_MAX {
                let room = ACCEPT_MAX - taken;
                if piece.len() >= GATHER {
                    if let Some(len) = gathered.take() {
                        self.seal_gathered(len)?;
                    }
                    let n = piece.len().min(MAX_DATA).min(room);
                    self.seal(APPLICATION_DATA, &piece[..n])?;
                    (taken, piece) = (taken + n, &piece[n..]);
                    continue;
                }
                let len = match gathered {
                    Some(len) => len,
                    None => {
                        self.reserve(MAX_DATA + OVERHEAD);
                        0
                    }
                };
                let n = piece.len().min(MAX_DATA - len).min(room);
                let to = self.filled + HEADER_LEN + len;
                self.out[to..to + n].copy_from_slice(&piece[..n]);
                (taken, piece) = (taken + n, &piece[n..]);
                gathered = Some(len + n);
                if len + n == MAX_DATA {
                    self.seal_gathered(len + n)?;
                    gathered = None;
                }
            }
        }
        if let Some(len) = gathered {
            self.seal_gathered(len)?;
        }
        Ok(taken)
    }

    /// Seals the record gathered at `out[filled..]` with `len` data bytes.
    fn seal_gathered(&mut self, len: usize) -> io::Result<()> {
        self.filled +=
            self.key
                .seal_gathered(APPLICATION_DATA, len, &mut self.out[self.filled..])?;
        Ok(())
    }

    /// Writes queued records once; `Ready(Ok)` after some progress.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.sent..self.filled]))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        self.sent += n;
        Poll::Ready(Ok(()))
    }

    fn poll_write_slices(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.closing {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "tls: write after shutdown",
            )));
        }
        while self.queued() >= SEND_AT {
            ready!(self.poll_send(cx))?;
        }
        self.rekey_if_due()?;
        let taken = self.seal_slices(bufs)?;
        if self.queued() >= SEND_AT {
            if let Poll::Ready(Err(e)) = self.poll_send(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(taken))
    }

    fn poll_flush_records(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.queued() > 0 {
            ready!(self.poll_send(cx))?;
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for TlsWrite<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_slices(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_slices(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_records(cx)
    }

    /// Sends close_notify, then ends the TCP stream's sending side.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            this.seal(record::ALERT, &CLOSE_NOTIFY)?;
            this.closing = true;
        }
        ready!(this.poll_flush_records(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// A whole TLS connection to another node: both halves over one TCP stream.
pub(crate) struct TlsConn {
    read: TlsRead<OwnedReadHalf>,
    write: TlsWrite<OwnedWriteHalf>,
    suite: CipherSuite,
    peer_certificates: Option<Vec<CertificateDer<'static>>>,
}

impl std::fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn")
            .field("suite", &self.suite)
            .field("read", &self.read)
            .field("write", &self.write)
            .finish_non_exhaustive()
    }
}

impl TlsConn {
    /// The connection over `tcp` once its handshake is `done`.
    pub(crate) fn new(tcp: TcpStream, done: Established) -> Self {
        let keys = KeySchedule::new(done.kernel);
        let (r, w) = tcp.into_split();
        Self {
            read: TlsRead::new(
                r,
                done.rx,
                keys.clone(),
                &done.opened,
                &done.received,
                done.peer_closed,
            ),
            write: TlsWrite::new(w, done.tx, keys),
            suite: done.suite,
            peer_certificates: done.peer_certificates,
        }
    }

    /// Splits into halves for a reader task and a writer task (no lock between).
    pub(crate) fn into_split(self) -> (TlsRead<OwnedReadHalf>, TlsWrite<OwnedWriteHalf>) {
        (self.read, self.write)
    }

    /// The peer's certificate chain, leaf first (if it presented one).
    pub(crate) fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.peer_certificates.as_deref()
    }

    /// The negotiated cipher suite.
    #[cfg(test)]
    pub(crate) fn suite(&self) -> CipherSuite {
        self.suite
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().read).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().write).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().write).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().write).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().write).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::conn::Conn;
    use crate::tls::aead::Backend;
    use crate::tls::tests::connected_pair;

    async fn tls_pair() -> (TlsConn, TlsConn) {
        match connected_pair().await {
            (Conn::Tls(a), Conn::Tls(b)) => (*a, *b),
            _ => panic!("not TLS"),
        }
    }

    fn bounded<F: std::future::Future>(f: F) -> tokio::time::Timeout<F> {
        tokio::time::timeout(Duration::from_secs(20), f)
    }

    /// Writes `data` in pieces of random sizes (some vectored, many short) and
    /// flushes now and then.
    async fn write_in_pieces(
        w: &mut TlsWrite<OwnedWriteHalf>,
        data: &[u8],
        rng: &mut fastrand::Rng,
    ) {
        let mut at = 0;
        while at < data.len() {
            let sizes = [1, 12, 100, 1023, 1024, 5000, 16384, 16385, 70000];
            let a = sizes[rng.usize(..sizes.len())].min(data.len() - at);
            let b = sizes[rng.usize(..sizes.len())].min(data.len() - at - a);
            let n = if rng.bool() {
                let pieces = [
                    IoSlice::new(&data[at..at + a]),
                    IoSlice::new(&data[at + a..at + a + b]),
                ];
                w.write_vectored(&pieces).await.unwrap()
            } else {
                w.write(&data[at..at + a]).await.unwrap()
            };
            at += n;
            if rng.u8(..4) == 0 {
                w.flush().await.unwrap();
            }
        }
        w.flush().await.unwrap();
    }

    /// Reads `len` bytes with reads of random sizes.
    async fn read_in_pieces(
        r: &mut TlsRead<OwnedReadHalf>,
        len: usize,
        rng: &mut fastrand::Rng,
    ) -> Vec<u8> {
        let mut got = Vec::with_capacity(len);
        let mut buf = vec![0; 100_000];
        while got.len() < len {
            let want = [1, 12, 17, 4096, 16384, 16400, 65536, 100_000][rng.usize(..8)];
            let n = r.read(&mut buf[..want]).await.unwrap();
            assert!(n > 0, "early end after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    #[tokio::test]
    async fn data_arrives_whole_and_in_order_both_ways_with_aws_lc() {
        data_arrives_whole_and_in_order_both_ways(Backend::AwsLc).await;
    }

    #[tokio::test]
    async fn data_arrives_whole_and_in_order_both_ways_with_ring() {
        data_arrives_whole_and_in_order_both_ways(Backend::Ring).await;
    }

    async fn data_arrives_whole_and_in_order_both_ways(backend: Backend) {
        crate::tls::aead::FORCED.with(|f| f.set(Some(backend)));
        let (a, b) = tls_pair().await;
        assert!(format!("{:?}", a.read.key).contains(&format!("{backend:?}")));
        let ((mut ar, mut aw), (mut br, mut bw)) = (a.into_split(), b.into_split());
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 + i / 7) as u8).collect();
        let (d1, d2) = (data.clone(), data.clone());
        let one = async {
            let mut rng = fastrand::Rng::with_seed(1);
            write_in_pieces(&mut aw, &d1, &mut rng).await;
        };
        let two = async {
            let mut rng = fastrand::Rng::with_seed(2);
            write_in_pieces(&mut bw, &d2, &mut rng).await;
        };
        let three = async {
            let mut rng = fastrand::Rng::with_seed(3);
            read_in_pieces(&mut br, data.len(), &mut rng).await
        };
        let four = async {
            let mut rng = fastrand::Rng::with_seed(4);
            read_in_pieces(&mut ar, data.len(), &mut rng).await
        };
        let (_, _, at_b, at_a) = bounded(async { tokio::join!(one, two, three, four) })
            .await
            .expect("within 20 s");
        assert!(at_b == data, "a → b");
        assert!(at_a == data, "b → a");
    }

    /// Regression: the reader's buffer never grew past one record (it moved the
    /// partial record to the front first and then saw room), so it read one
    /// record per syscall.
    #[tokio::test]
    async fn reads_grow_to_take_many_records_at_once() {
        let (a, b) = tls_pair().await;
        let ((_ar, mut aw), (mut br, _bw)) = (a.into_split(), b.into_split());
        let data = vec![7u8; 4 << 20];
        let send = async {
            aw.write_all(&data).await.unwrap();
            aw.flush().await.unwrap();
        };
        let receive = async {
            let mut buf = vec![0; 64 * 1024];
            let mut left = data.len();
            while left > 0 {
                left -= br.read(&mut buf).await.unwrap();
            }
        };
        bounded(async { tokio::join!(send, receive) })
            .await
            .unwrap();
        assert_eq!(br.buf.len(), READ_MAX);
    }

    #[tokio::test]
    async fn keys_are_replaced_as_records_add_up() {
        let (a, b) = tls_pair().await;
        let ((_ar, mut aw), (mut br, _bw)) = (a.into_split(), b.into_split());
        aw.rekey_after(5);
        let data: Vec<u8> = (0..500_000u32).map(|i| (i % 251) as u8).collect();
        let send = async {
            let mut rng = fastrand::Rng::with_seed(5);
            write_in_pieces(&mut aw, &data, &mut rng).await;
            aw
        };
        let receive = async {
            let mut rng = fastrand::Rng::with_seed(6);
            read_in_pieces(&mut br, data.len(), &mut rng).await
        };
        let (aw, got) = bounded(async { tokio::join!(send, receive) })
            .await
            .unwrap();
        assert!(got == data);
        // ≥ 31 records of 16 KiB went out: the key changed at least 6 times, and
        // each key protected at most 6 records (5 and its key update).
        assert!(aw.key.seq() <= 6, "{:?}", aw.key);
        assert!(br.key.seq() <= 6, "{:?}", br.key);
    }

    #[tokio::test]
    async fn a_requested_key_update_is_answered_before_more_data() {
        let (a, b) = tls_pair().await;
        let ((mut ar, mut aw), (mut br, mut bw)) = (a.into_split(), b.into_split());
        // a asks b to update its key, as a peer may (RFC 8446 §4.6.3).
        aw.seal(HANDSHAKE, &[24, 0, 0, 1, 1]).unwrap();
        aw.key = aw.keys.next_key(true).unwrap();
        aw.write_all(b"ping").await.unwrap();
        aw.flush().await.unwrap();
        let mut got = [0; 4];
        bounded(br.read_exact(&mut got)).await.unwrap().unwrap();
        assert_eq!(&got, b"ping");
        assert!(bw.keys.peer_asked_update.load(Ordering::Acquire));
        bw.write_all(b"pong").await.unwrap();
        bw.flush().await.unwrap();
        assert!(!bw.keys.peer_asked_update.load(Ordering::Acquire));
        assert_eq!(bw.key.seq(), 1, "b moved to its next key before its data");
        bounded(ar.read_exact(&mut got)).await.unwrap().unwrap();
        assert_eq!(&got, b"pong");
    }

    #[tokio::test]
    async fn close_notify_is_the_end_and_a_bare_close_is_an_error() {
        let (a, b) = tls_pair().await;
        let ((_ar, mut aw), (mut br, bw)) = (a.into_split(), b.into_split());
        aw.write_all(b"last words").await.unwrap();
        aw.shutdown().await.unwrap();
        let mut got = Vec::new();
        bounded(br.read_to_end(&mut got)).await.unwrap().unwrap();
        assert_eq!(got, b"last words");
        assert!(aw.write(b"more").await.is_err(), "write after shutdown");

        // b's writer goes away without close_notify: a truncation to a's reader.
        let (c, d) = tls_pair().await;
        let ((mut cr, _cw), (_dr, dw)) = (c.into_split(), d.into_split());
        drop((bw, dw));
        let err = bounded(cr.read(&mut [0; 16])).await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
    }

    #[tokio::test]
    async fn a_record_that_does_not_open_fails_every_later_read() {
        let (a, b) = tls_pair().await;
        let ((mut ar, _aw), (_br, mut bw)) = (a.into_split(), b.into_split());
        // b seals three records; the second is flipped on the way.
        for word in [&b"one"[..], b"two", b"three"] {
            bw.seal(APPLICATION_DATA, word).unwrap();
        }
        let first_len = 3 + OVERHEAD;
        bw.out[first_len + HEADER_LEN] ^= 1;
        bw.flush().await.unwrap();
        let mut got = [0; 3];
        bounded(ar.read_exact(&mut got)).await.unwrap().unwrap();
        assert_eq!(&got, b"one");
        for _ in 0..3 {
            let err = bounded(ar.read(&mut [0; 16])).await.unwrap().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        }
    }

    #[tokio::test]
    async fn bytes_that_are_not_records_end_the_reader_with_an_error() {
        // A TLS reader over a plain socket that receives garbage after the
        // handshake: every case is an error, never a panic or data.
        for garbage in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            &[23, 3, 3, 0xff, 0xff][..],
            &[23, 3, 3, 0, 40, 1, 2, 3][..],
            &[
                23, 3, 3, 0, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ][..],
        ] {
            let (a, b) = tls_pair().await;
            let (mut ar, _aw) = a.into_split();
            let (br, bw) = b.into_split();
            let mut raw = bw.io;
            raw.write_all(garbage).await.unwrap();
            drop(raw);
            drop(br);
            let got = bounded(ar.read(&mut [0; 64])).await.unwrap();
            assert!(got.is_err(), "{garbage:?} gave {got:?}");
        }
    }
}

#[cfg(test)]
mod handshake_burst_tests {
    use std::future::Future;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

    use super::*;
    use crate::addr::LogicAddr;
    use crate::tls::handshake;
    use crate::tls::tests::{node_tls, test_ca};

    /// A stream whose first read after its first write waits for `sent`: the
    /// acceptor's handshake reads the dialer's last flight only after the
    /// dialer has also sent what it wrote right after its handshake (on
    /// loopback, written bytes are in the other socket when the write returns).
    struct LateReader<'a> {
        tcp: &'a mut TcpStream,
        wrote: bool,
        sent: Pin<Box<WaitForCancellationFutureOwned>>,
        waited: bool,
    }

    impl AsyncRead for LateReader<'_> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            if this.wrote && !this.waited {
                ready!(this.sent.as_mut().poll(cx));
                this.waited = true;
            }
            Pin::new(&mut *this.tcp).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for LateReader<'_> {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            this.wrote = true;
            Pin::new(&mut *this.tcp).poll_write(cx, buf)
        }
        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut *self.get_mut().tcp).poll_flush(cx)
        }
        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut *self.get_mut().tcp).poll_shutdown(cx)
        }
    }

    /// The dialer writes `chunks` (each flushed) and shuts down right after its
    /// handshake; the acceptor reads its last handshake flight only then.
    /// Returns what the acceptor reads to the end, and how many bytes its
    /// handshake had opened and left unopened.
    async fn late_acceptor(chunks: &[Vec<u8>]) -> (io::Result<Vec<u8>>, (usize, usize)) {
        let ca = test_ca();
        let (a, b): (LogicAddr, LogicAddr) = ("1.1.1".parse().unwrap(), "1.2.1".parse().unwrap());
        let (dialer, acceptor) = (node_tls(&ca, a), node_tls(&ca, b));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to = listener.local_addr().unwrap();
        let mut left = (0, 0);
        let (sent, accepted) = (CancellationToken::new(), CancellationToken::new());
        let accept = async {
            let _accepted = accepted.clone().drop_guard();
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut late = LateReader {
                tcp: &mut tcp,
                wrote: false,
                sent: Box::pin(sent.clone().cancelled_owned()),
                waited: false,
            };
            let done = handshake::accept(acceptor.server.clone(), &mut late).await?;
            left = (done.opened.len(), done.received.len());
            let (mut r, _w) = TlsConn::new(tcp, done).into_split();
            let mut got = Vec::new();
            r.read_to_end(&mut got).await?;
            Ok(got)
        };
        let connect = async {
            let tcp = TcpStream::connect(to).await.unwrap();
            let conn = dialer.connect(b, tcp).await.unwrap();
            let crate::conn::Conn::Tls(conn) = conn else {
                panic!("not TLS")
            };
            let (_r, mut w) = conn.into_split();
            for chunk in chunks {
                w.write_all(chunk).await.unwrap();
                w.flush().await.unwrap();
            }
            w.shutdown().await.unwrap();
            sent.cancel();
            // The socket stays open until the acceptor is done with it.
            accepted.cancelled().await;
            drop(w);
        };
        let (_, got) = tokio::time::timeout(Duration::from_secs(20), async {
            tokio::join!(connect, accept)
        })
        .await
        .expect("within 20 s");
        (got, left)
    }

    /// Regression: rustls saw the close_notify that came with the dialer's last
    /// flight, and the acceptor's handshake failed ("the peer closed during the
    /// handshake"): the data before it was lost.
    #[tokio::test]
    async fn data_and_close_notify_right_after_the_handshake() {
        let (got, (opened, _)) = late_acceptor(&[b"hello".to_vec()]).await;
        assert_eq!(got.unwrap(), b"hello");
        assert_eq!(opened, 5, "the data came with the last flight");
    }

    /// Records opened by rustls with the last flight, and a partial record after
    /// them, go on in the link's reader.
    #[tokio::test]
    async fn a_burst_right_after_the_handshake_arrives_whole() {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 13 + i / 5) as u8).collect();
        let chunks = [b"one".to_vec(), b"two".to_vec(), big];
        let (got, (opened, received)) = late_acceptor(&chunks).await;
        assert!(got.unwrap() == chunks.concat());
        assert_eq!(opened, 6, "the short records came with the last flight");
        assert!(received > 0, "a partial record was left");
    }
}
