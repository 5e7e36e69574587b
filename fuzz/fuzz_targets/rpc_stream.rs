//! cargo-fuzz target `rpc_stream`: the body is `clustergo::fuzzing::rpc_stream::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clustergo::fuzzing::rpc_stream::run(data));
