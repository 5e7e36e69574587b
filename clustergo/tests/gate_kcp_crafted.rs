//! KCP datagrams crafted from what the `gate_kcp` fuzz target found (`tests/fuzz.rs`):
//! the `kcp` crate computed on them with overflowing arithmetic, which panicked where
//! overflow checks were on. One datagram stopped the gate's KCP receive loop, so the
//! gate served no one after it. It must keep serving.

#![cfg(feature = "kcp")]

mod gate_common;

use std::time::Duration;

use bytes::Bytes;
use clustergo::gate::{self, GateConfig, Transport};
use gate_common::{EchoServer, within};

/// A KCP segment (`conv` 0: the gate assigns one).
fn segment(cmd: u8, frg: u8, ts: u32, data: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(24 + data.len());
    s.extend_from_slice(&0u32.to_le_bytes()); // conv
    s.push(cmd);
    s.push(frg);
    s.extend_from_slice(&256u16.to_le_bytes()); // window
    s.extend_from_slice(&ts.to_le_bytes());
    s.extend_from_slice(&[0; 8]); // sn 0, una 0
    s.extend_from_slice(&(data.len() as u32).to_le_bytes());
    s.extend_from_slice(data);
    s
}

const PUSH: u8 = 81;
const ACK: u8 = 82;

/// Sends `datagram` to a KCP gate, then checks a real client is served.
async fn still_serves_after(datagram: &[u8]) {
    gate_common::init_tracing();
    let config = GateConfig::default();
    let server = EchoServer::start(Transport::Kcp, config.clone()).await;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(datagram, server.addr).await.unwrap();
    // Let the gate read it (and serve the session it opens) before a real client.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut client = within("connect", gate::connect_kcp(server.addr, &config))
        .await
        .expect("connect");
    client.send(Bytes::from_static(b"login")).await.unwrap();
    let back = within("echo", client.recv()).await.unwrap().unwrap();
    assert_eq!(back, &b"login"[..]);
}

fn login() -> Vec<u8> {
    [&5u32.to_be_bytes()[..], b"hello"].concat()
}

/// A conversation start whose data segment has fragment number 255: the session's
/// read check computed `frg + 1` in a u8.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragment_number_255() {
    still_serves_after(&segment(PUSH, 255, 0, &login())).await;
}

/// A conversation start followed by acks whose timestamps lie half the clock away
/// (one of the two, whatever the clock): `now as i32 - ts as i32` overflowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_timestamps_half_the_clock_away() {
    let datagram = [
        segment(PUSH, 0, 0, &login()),
        segment(ACK, 0, 0x8000_0000, &[]),
        segment(ACK, 0, 0x7fff_ffff, &[]),
    ]
    .concat();
    still_serves_after(&datagram).await;
}
