//! The seed README's echo server: registers `service::echo` on the default node as
//! `1.1.1` and serves until killed.
//!
//! ```text
//! cargo run -p examples --bin echo_server [-- MEMBERS.json]
//! ```
//! Membership defaults to `examples/cluster.json`.

use clustergo::membership::FileMembership;
use clustergo::{LogicAddr, RpcContext};
use service::echo;

struct EchoService;

impl echo::EchoService for EchoService {
    fn on_call(&self, ctx: RpcContext, replyer: echo::Replyer, request: echo::Request) {
        tracing::debug!(from = %ctx.from(), msg = %request.msg, "echo");
        replyer.reply(echo::Response { msg: request.msg });
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let members = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.json").to_owned());
    echo::register(EchoService);
    let local: LogicAddr = "1.1.1".parse().expect("valid address");
    if let Err(e) = clustergo::start(FileMembership::new(&members), local).await {
        eprintln!("echo_server: cannot start {local} from {members}: {e}");
        return std::process::ExitCode::FAILURE;
    }
    println!("echo_server: serving echo as {local}");
    clustergo::wait().await;
    std::process::ExitCode::SUCCESS
}
