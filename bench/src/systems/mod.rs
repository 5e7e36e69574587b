//! The systems under test. Each one answers every workload it can and says "n/a"
//! (with the reason) for the rest.

pub(crate) mod clustergo;
mod raw;
mod tarpc;
mod tonic;

use crate::workload::{Run, Sizes, Workload};

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum System {
    Raw,
    Tonic,
    /// tarpc with its bincode serde transport over TCP.
    Tarpc,
    Clustergo,
    /// clustergo's in-flight workload driven by `call_with_callback`.
    ClustergoCallback,
    /// clustergo over mutual TLS 1.3 (in-flight RPC and stream only).
    ClustergoTls,
    /// clustergo's in-flight workload served by an async-form handler.
    ClustergoAsync,
}

/// What one run of one workload on one system produced.
#[derive(Debug)]
pub(crate) enum Outcome {
    Done(Run),
    NotApplicable(&'static str),
}

impl System {
    /// Every system, in report order; raw first, since ratios are against it.
    pub(crate) const ALL: [System; 7] = [
        System::Raw,
        System::Tonic,
        System::Tarpc,
        System::Clustergo,
        System::ClustergoCallback,
        System::ClustergoTls,
        System::ClustergoAsync,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            System::Raw => "raw",
            System::Tonic => "tonic",
            System::Tarpc => "tarpc",
            System::Clustergo => "clustergo",
            System::ClustergoCallback => "clustergo-cb",
            System::ClustergoTls => "clustergo-tls",
            System::ClustergoAsync => "clustergo-async",
        }
    }

    /// Whether this system has a row for `w` at all (variants cover one workload).
    pub(crate) fn applies_to(self, w: Workload) -> bool {
        match self {
            System::ClustergoCallback | System::ClustergoAsync => w == Workload::RpcInflight,
            System::ClustergoTls => matches!(w, Workload::RpcInflight | Workload::Stream),
            // Harbors are clustergo's; its direct call is the comparison there. The
            // streaming call compares with clustergo's own one-way messages.
            System::Raw | System::Tonic | System::Tarpc => {
                !matches!(w, Workload::Harbor | Workload::StreamRpc)
            }
            System::Clustergo => true,
        }
    }

    /// One run of `w` on this system, set up and torn down around it.
    pub(crate) async fn run(self, w: Workload, s: Sizes) -> Result<Outcome, String> {
        match self {
            System::Raw => raw::run(w, s).await,
            System::Tonic => tonic::run(w, s).await,
            System::Tarpc => tarpc::run(w, s).await,
            System::Clustergo => clustergo::run(w, s).await,
            System::ClustergoCallback => clustergo::run_callbacks(w, s).await,
            System::ClustergoTls => clustergo::run_tls(w, s).await,
            System::ClustergoAsync => clustergo::run_async(w, s).await,
        }
    }
}
