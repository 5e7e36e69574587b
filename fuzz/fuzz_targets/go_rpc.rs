//! cargo-fuzz target `go_rpc`: the body is `clustergo::fuzzing::go_rpc::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clustergo::fuzzing::go_rpc::run(data));
