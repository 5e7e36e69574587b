//! tonic: unary gRPC over one channel (HTTP/2 on one loopback connection).

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};

use super::Outcome;
use crate::proto::echo_client::EchoClient;
use crate::proto::echo_server::{Echo, EchoServer};
use crate::proto::{Request, Response};
use crate::workload::{self, Caller, Sizes, Workload};

pub(crate) async fn run(w: Workload, s: Sizes) -> Result<Outcome, String> {
    match w {
        Workload::RpcInflight | Workload::RpcTasks | Workload::RpcSeq => {
            let (addr, stop) = serve().await?;
            let channel = Channel::from_shared(format!("http://{addr}"))
                .map_err(|e| e.to_string())?
                .connect()
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let run = workload::run_rpc(w, TonicClient(EchoClient::new(channel)), s).await;
            let _ = stop.send(());
            run.map(Outcome::Done)
        }
        Workload::Oneway => Ok(Outcome::NotApplicable("gRPC has no one-way message")),
        Workload::Stream => Ok(Outcome::NotApplicable("not measured for tonic")),
        Workload::Harbor => Ok(Outcome::NotApplicable("no harbors in tonic")),
        Workload::StreamRpc => Ok(Outcome::NotApplicable("not measured for tonic")),
        Workload::Memory => crate::memory::run(super::System::Tonic, s).await,
    }
}

#[derive(Debug)]
struct EchoService;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(
        &self,
        request: tonic::Request<Request>,
    ) -> Result<tonic::Response<Response>, tonic::Status> {
        Ok(tonic::Response::new(workload::reply_to(request.get_ref())))
    }
}

/// Starts the server on a loopback port; sending on (or dropping) the returned
/// sender stops it.
async fn serve() -> Result<(SocketAddr, oneshot::Sender<()>), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        Server::builder()
            .add_service(EchoServer::new(EchoService))
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                async {
                    let _ = stopped.await;
                },
            ),
    );
    Ok((addr, stop))
}

#[derive(Debug, Clone)]
struct TonicClient(EchoClient<Channel>);

impl Caller for TonicClient {
    fn rpc(&self, req: Request) -> impl Future<Output = Result<Response, String>> + Send + 'static {
        let mut client = self.0.clone();
        async move {
            client
                .echo(req)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| s.to_string())
        }
    }
}
