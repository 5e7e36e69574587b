#[clustergo::service]
pub struct NotATrait;

fn main() {}
