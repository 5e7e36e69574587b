//! tarpc: its `#[tarpc::service]` over one loopback TCP connection with tarpc's
//! serde transport (length-delimited frames, bincode), `TCP_NODELAY` on both sides
//! like every other system. The request and reply carry the same strings as the
//! others' protobuf messages; tarpc's envelope (request id, deadline, trace
//! context) comes on top, as it would for any tarpc user.

use std::net::SocketAddr;

use futures::StreamExt;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::{Framed, LengthDelimitedCodec};
use tarpc::{client, context, serde_transport};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::Outcome;
use crate::proto::{Request, Response};
use crate::workload::{self, Caller, Sizes, Workload};

/// The echo service, with the message string as its argument and result.
#[tarpc::service]
trait Echo {
    /// Answers `msg` as every system does.
    async fn echo(msg: String) -> String;
}

pub(crate) async fn run(w: Workload, s: Sizes) -> Result<Outcome, String> {
    match w {
        Workload::RpcInflight | Workload::RpcTasks | Workload::RpcSeq => {
            let mut tasks = JoinSet::new();
            let addr = serve(&mut tasks).await?;
            let sock = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            sock.set_nodelay(true).map_err(|e| e.to_string())?;
            let transport = serde_transport::new(
                Framed::new(sock, LengthDelimitedCodec::new()),
                Bincode::default(),
            );
            let mut config = client::Config::default();
            // Room for the 500-call window; the default (1000) already is, but say so.
            config.max_in_flight_requests = config.max_in_flight_requests.max(2 * s.inflight);
            let client = EchoClient::new(config, transport).spawn();
            let run = workload::run_rpc(w, TarpcClient(client), s).await;
            tasks.shutdown().await;
            run.map(Outcome::Done)
        }
        Workload::Oneway => Ok(Outcome::NotApplicable("tarpc has no one-way message")),
        Workload::Stream => Ok(Outcome::NotApplicable("tarpc has no byte streams")),
        Workload::Harbor => Ok(Outcome::NotApplicable("no harbors in tarpc")),
        Workload::StreamRpc => Ok(Outcome::NotApplicable("not measured for tarpc")),
        Workload::Memory => crate::memory::run(super::System::Tarpc, s).await,
    }
}

#[derive(Debug, Clone)]
struct EchoServer;

impl Echo for EchoServer {
    async fn echo(self, _: context::Context, msg: String) -> String {
        workload::reply_to(&Request { msg }).msg
    }
}

/// Accepts on a loopback port and serves every connection in `tasks`, each request
/// in a task of its own (tarpc's usual way to run a channel).
async fn serve(tasks: &mut JoinSet<()>) -> Result<SocketAddr, String> {
    super::raw::listen(tasks, |sock| async move {
        let transport = serde_transport::new(
            Framed::new(sock, LengthDelimitedCodec::new()),
            Bincode::default(),
        );
        BaseChannel::with_defaults(transport)
            .execute(EchoServer.serve())
            .for_each(|response| async {
                tokio::spawn(response);
            })
            .await;
        Ok(())
    })
    .await
}

#[derive(Debug, Clone)]
struct TarpcClient(EchoClient);

impl Caller for TarpcClient {
    fn rpc(&self, req: Request) -> impl Future<Output = Result<Response, String>> + Send + 'static {
        let client = self.0.clone();
        async move {
            client
                .echo(context::current(), req.msg)
                .await
                .map(|msg| Response { msg })
                .map_err(|e| e.to_string())
        }
    }
}
