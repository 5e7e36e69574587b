#[clustergo::service]
pub trait Nothing {}

fn main() {}
