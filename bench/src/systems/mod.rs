//! The systems under test. Each one answers every workload it can and says "n/a"
//! (with the reason) for the rest.

mod raw;
mod tonic;

use crate::workload::{Run, Sizes, Workload};

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum System {
    Raw,
    Tonic,
    Clustergo,
}

/// What one run of one workload on one system produced.
#[derive(Debug)]
pub(crate) enum Outcome {
    Done(Run),
    NotApplicable(&'static str),
}

impl System {
    /// Every system, in report order; raw first, since ratios are against it.
    pub(crate) const ALL: [System; 3] = [System::Raw, System::Tonic, System::Clustergo];

    pub(crate) fn name(self) -> &'static str {
        match self {
            System::Raw => "raw",
            System::Tonic => "tonic",
            System::Clustergo => "clustergo",
        }
    }

    /// One run of `w` on this system, set up and torn down around it.
    pub(crate) async fn run(self, w: Workload, s: Sizes) -> Result<Outcome, String> {
        match self {
            System::Raw => raw::run(w, s).await,
            System::Tonic => tonic::run(w, s).await,
            System::Clustergo => Ok(Outcome::NotApplicable(
                "clustergo runtime (Node, RPC) not merged yet",
            )),
        }
    }
}
