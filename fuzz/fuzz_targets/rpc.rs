//! cargo-fuzz target `rpc`: the body is `clustergo::fuzzing::rpc::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clustergo::fuzzing::rpc::run(data));
