//! The baseline: the least a multiplexed request/response needs over one tokio
//! `TcpStream`, written the way a careful engineer would for a benchmark.
//!
//! Frame: `[u32 len][u64 seq][prost payload]`, `len` counting seq and payload. Each
//! side has a writer task that drains an mpsc into one buffer per write, and a reader
//! task; the client's reader completes oneshots from a map keyed by seq, the server's
//! reader answers each request inline.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, BufMut, BytesMut};
use parking_lot::Mutex;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::Outcome;
use crate::proto::{Request, Response};
use crate::workload::{self, Arrivals, Caller, REQUEST_MSG, Run, Sizes, Stopwatch, Workload};

/// `u32 len` + `u64 seq`.
const HEADER: usize = 12;
/// Largest frame accepted, checked before buffering it.
const MAX_FRAME: usize = 4 << 20;
/// Queue depth of each writer, and the most frames it drains into one write.
const QUEUE: usize = 4096;

pub(crate) async fn run(w: Workload, s: Sizes) -> Result<Outcome, String> {
    match w {
        Workload::RpcInflight | Workload::RpcTasks | Workload::RpcSeq => {
            let mut tasks = JoinSet::new();
            let addr = listen(&mut tasks, serve_rpc).await?;
            let client = RawClient::connect(addr, &mut tasks).await?;
            let run = workload::run_rpc(w, client, s).await;
            tasks.shutdown().await;
            run.map(Outcome::Done)
        }
        Workload::Oneway => oneway(s).await.map(Outcome::Done),
        Workload::Stream => stream(s).await.map(Outcome::Done),
        Workload::Harbor => Ok(Outcome::NotApplicable("no harbors in raw TCP")),
        Workload::StreamRpc => Ok(Outcome::NotApplicable("no RPC in raw TCP")),
        Workload::Memory => crate::memory::run(super::System::Raw, s).await,
    }
}

/// Binds a loopback listener and serves every connection with `serve` in `tasks`.
pub(super) async fn listen<F, Fut>(
    tasks: &mut JoinSet<()>,
    serve: F,
) -> Result<std::net::SocketAddr, String>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = io::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tasks.spawn(async move {
        // Dropping this set (when the accept task is aborted) aborts the connections.
        let mut conns = JoinSet::new();
        while let Ok((sock, _)) = listener.accept().await {
            let _ = sock.set_nodelay(true);
            conns.spawn(serve(sock));
        }
    });
    Ok(addr)
}

/// Encodes queued `(seq, message)` pairs, as many as are waiting, into one buffer
/// per `write_all`.
async fn writer<M: Message>(mut rx: mpsc::Receiver<(u64, M)>, mut sock: OwnedWriteHalf) {
    let mut batch = Vec::with_capacity(QUEUE);
    let mut buf = BytesMut::with_capacity(64 << 10);
    while rx.recv_many(&mut batch, QUEUE).await > 0 {
        for (seq, msg) in batch.drain(..) {
            let len = msg.encoded_len();
            buf.reserve(HEADER + len);
            buf.put_u32((8 + len) as u32);
            buf.put_u64(seq);
            // Cannot fail: the buffer was reserved above.
            let _ = msg.encode(&mut buf);
        }
        if sock.write_all(&buf).await.is_err() {
            return;
        }
        buf.clear();
    }
}

/// Reads frames from one connection, one at a time, without copying them out of
/// its buffer.
#[derive(Debug)]
struct FrameReader {
    sock: OwnedReadHalf,
    buf: BytesMut,
    /// Length of the frame handed out last; dropped from `buf` on the next call.
    consumed: usize,
}

impl FrameReader {
    fn new(sock: OwnedReadHalf) -> Self {
        Self {
            sock,
            buf: BytesMut::with_capacity(64 << 10),
            consumed: 0,
        }
    }

    /// The next `(seq, payload)`; `None` at EOF.
    async fn next(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        self.buf.advance(self.consumed);
        self.consumed = 0;
        let len = loop {
            if self.buf.len() >= 4 {
                let len = u32::from_be_bytes(self.buf[..4].try_into().unwrap()) as usize;
                if !(8..=MAX_FRAME).contains(&len) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "bad frame length",
                    ));
                }
                if self.buf.len() >= 4 + len {
                    break len;
                }
                self.buf.reserve(4 + len - self.buf.len());
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(64 << 10);
            }
            if self.sock.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        };
        self.consumed = 4 + len;
        let seq = u64::from_be_bytes(self.buf[4..HEADER].try_into().unwrap());
        Ok(Some((seq, &self.buf[HEADER..4 + len])))
    }
}

fn invalid(e: prost::DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Server side of the RPC: answers every request on the connection.
async fn serve_rpc(sock: TcpStream) -> io::Result<()> {
    let (r, w) = sock.into_split();
    let (tx, rx) = mpsc::channel::<(u64, Response)>(QUEUE);
    let writer = tokio::spawn(writer(rx, w));
    let mut frames = FrameReader::new(r);
    let result = async {
        while let Some((seq, payload)) = frames.next().await? {
            let req = Request::decode(payload).map_err(invalid)?;
            tx.send((seq, workload::reply_to(&req)))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        }
        Ok(())
    }
    .await;
    drop(tx);
    let _ = writer.await;
    result
}

type Pending = Mutex<HashMap<u64, oneshot::Sender<Response>>>;

/// Client side of the RPC: one connection, calls multiplexed by seq.
#[derive(Debug, Clone)]
pub(crate) struct RawClient {
    tx: mpsc::Sender<(u64, Request)>,
    pending: Arc<Pending>,
    seq: Arc<AtomicU64>,
}

impl RawClient {
    async fn connect(addr: std::net::SocketAddr, tasks: &mut JoinSet<()>) -> Result<Self, String> {
        let sock = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        sock.set_nodelay(true).map_err(|e| e.to_string())?;
        let (r, w) = sock.into_split();
        let (tx, rx) = mpsc::channel(QUEUE);
        let pending: Arc<Pending> = Arc::default();
        tasks.spawn(writer(rx, w));
        let map = pending.clone();
        tasks.spawn(async move {
            let mut frames = FrameReader::new(r);
            while let Ok(Some((seq, payload))) = frames.next().await {
                let Ok(resp) = Response::decode(payload) else {
                    break;
                };
                if let Some(done) = map.lock().remove(&seq) {
                    let _ = done.send(resp);
                }
            }
            // Fail every call still waiting: their senders drop here.
            map.lock().clear();
        });
        Ok(Self {
            tx,
            pending,
            seq: Arc::default(),
        })
    }
}

impl Caller for RawClient {
    fn rpc(&self, req: Request) -> impl Future<Output = Result<Response, String>> + Send + 'static {
        let this = self.clone();
        async move {
            let seq = this.seq.fetch_add(1, Ordering::Relaxed);
            let (done, reply) = oneshot::channel();
            this.pending.lock().insert(seq, done);
            if this.tx.send((seq, req)).await.is_err() {
                this.pending.lock().remove(&seq);
                return Err("connection closed".to_owned());
            }
            reply.await.map_err(|_| "connection closed".to_owned())
        }
    }
}

/// One-way: framed writes through the same batched writer, counted by the server.
async fn oneway(s: Sizes) -> Result<Run, String> {
    let arrivals = Arc::new(Arrivals::default());
    let mut tasks = JoinSet::new();
    let counter = arrivals.clone();
    let addr = listen(&mut tasks, move |sock| {
        let counter = counter.clone();
        async move {
            let (r, _w) = sock.into_split();
            let mut frames = FrameReader::new(r);
            while let Some((_, payload)) = frames.next().await? {
                let req = Request::decode(payload).map_err(invalid)?;
                counter.arrived(1, req.msg == REQUEST_MSG);
            }
            Ok(())
        }
    })
    .await?;
    let sock = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    let (_r, w) = sock.into_split();
    let (tx, rx) = mpsc::channel::<(u64, Request)>(QUEUE);
    tasks.spawn(writer(rx, w));

    let warmup = s.warmup as u64;
    let total = warmup + s.oneway_msgs;
    let client = async move {
        let send = async |n: u64| {
            for _ in 0..n {
                tx.send((0, workload::request()))
                    .await
                    .map_err(|_| "connection closed".to_owned())?;
            }
            Ok::<_, String>(())
        };
        send(warmup).await?;
        arrivals.wait_for(warmup).await?;
        let watch = Stopwatch::start();
        send(s.oneway_msgs).await?;
        arrivals.wait_for(total).await?;
        let (d, cpu) = watch.stop();
        arrivals.finish(total)?;
        Ok(Run {
            values: vec![("oneway_pb", workload::per_sec(s.oneway_msgs, d))],
            cpu,
            note: None,
        })
    };
    let out = workload::spawn_timed(client).await;
    tasks.shutdown().await;
    out
}

/// Stream: one `TcpStream`, `stream_chunk`-sized writes, bytes counted by the reader.
async fn stream(s: Sizes) -> Result<Run, String> {
    let arrivals = Arc::new(Arrivals::default());
    let mut tasks = JoinSet::new();
    let counter = arrivals.clone();
    let chunk = s.stream_chunk;
    let addr = listen(&mut tasks, move |mut sock| {
        let counter = counter.clone();
        async move {
            let mut buf = vec![0u8; chunk];
            loop {
                let n = sock.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                counter.arrived(n as u64, true);
            }
        }
    })
    .await?;
    let client = async move {
        let mut sock = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        sock.set_nodelay(true).map_err(|e| e.to_string())?;
        let data = vec![0xa5u8; chunk];
        let watch = Stopwatch::start();
        let mut left = s.stream_bytes;
        while left > 0 {
            let n = left.min(chunk as u64) as usize;
            sock.write_all(&data[..n])
                .await
                .map_err(|e| format!("write: {e}"))?;
            left -= n as u64;
        }
        arrivals.wait_for(s.stream_bytes).await?;
        let (d, cpu) = watch.stop();
        arrivals.finish(s.stream_bytes)?;
        Ok(Run {
            values: vec![("stream_64k", workload::per_sec(s.stream_bytes, d) / 1e9)],
            cpu,
            note: None,
        })
    };
    let out = workload::spawn_timed(client).await;
    tasks.shutdown().await;
    out
}
