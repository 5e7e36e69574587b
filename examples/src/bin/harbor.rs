//! Two clusters in one process, each with a harbor and a service node. A node of
//! cluster 1 finds the exported node of cluster 2 by type and reaches it through
//! the harbors (1.1.1 → 1.255.1 → 2.255.1 → 2.3.1): a message and a call.
//! Exits 0 only if both crossed, within 10 s.
//!
//! ```text
//! cargo run -p examples --bin harbor
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clustergo::membership::InProcess;
use clustergo::{Node, RpcContext};
use examples::{bind_member, init_logging, within};
use service::echo;
use tokio::sync::mpsc;

const NOTICE: u16 = 7;

struct Echo;

impl echo::EchoService for Echo {
    fn on_call(&self, ctx: RpcContext, replyer: echo::Replyer, request: echo::Request) {
        println!("  2.3.1 <- call from {}: {:?}", ctx.from(), request.msg);
        replyer.reply(echo::Response {
            msg: format!("hello world:{}", request.msg),
        });
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    match within("harbor example", Duration::from_secs(10), run()).await {
        Ok(Ok(())) => {
            println!("harbor: message and call crossed clusters");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) | Err(e) => {
            eprintln!("harbor FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    // One membership lists both clusters (harbors see each other; other nodes see
    // their own cluster plus exported nodes).
    let membership = InProcess::new();
    let mut nodes = Vec::new();
    let mut start = async |logic: &str, export: bool| -> Result<Node, String> {
        let (listener, member) = bind_member(logic, export)
            .await
            .map_err(|e| e.to_string())?;
        let addr = member.logic();
        membership.put_now(member);
        let node = Node::new();
        node.start_on(listener, membership.clone(), addr)
            .await
            .map_err(|e| format!("start {logic}: {e}"))?;
        nodes.push(node.clone());
        Ok(node)
    };
    let a = start("1.1.1", false).await?;
    start("1.255.1", false).await?;
    start("2.255.1", false).await?;
    let b = Node::new();
    echo::register_on(&b, Echo);
    let (tx, mut rx) = mpsc::unbounded_channel();
    b.register_pb_handler(NOTICE, move |from, m: echo::Request| {
        println!("  2.3.1 <- message from {from}: {:?}", m.msg);
        let _ = tx.send(m.msg);
    });
    let (listener, member) = bind_member("2.3.1", true)
        .await
        .map_err(|e| e.to_string())?;
    let b_addr = member.logic();
    membership.put_now(member);
    b.start_on(listener, membership.clone(), b_addr)
        .await
        .map_err(|e| format!("start 2.3.1: {e}"))?;

    let target = within(
        "exported node to be visible",
        Duration::from_secs(3),
        async {
            loop {
                if let Some(t) = a.get_addr_by_type(3) {
                    return t;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        },
    )
    .await?;
    println!(
        "1.1.1 found exported {target} in cluster {}",
        target.cluster()
    );

    a.register_pb_message::<echo::Request>(NOTICE);
    a.send_pb(
        target,
        &echo::Request {
            msg: "across clusters".into(),
        },
    )
    .map_err(|e| format!("send: {e}"))?;
    let got = within("message", Duration::from_secs(3), rx.recv()).await?;
    if got.as_deref() != Some("across clusters") {
        return Err(format!("message: got {got:?}"));
    }
    let resp = echo::EchoClient::new(&a)
        .call(
            target,
            &echo::Request {
                msg: "sniperHW".into(),
            },
        )
        .await
        .map_err(|e| format!("call: {e}"))?;
    println!("  1.1.1 <- reply {:?}", resp.msg);
    if resp.msg != "hello world:sniperHW" {
        return Err(format!("wrong reply {:?}", resp.msg));
    }
    println!(
        "links made by 1.1.1: {} (only its harbor), by 2.3.1: {}",
        a.metrics().links_established,
        b.metrics().links_established
    );
    for n in nodes.into_iter().chain([b]) {
        n.shutdown().await;
    }
    Ok(())
}
