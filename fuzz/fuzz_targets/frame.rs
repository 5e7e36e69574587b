//! cargo-fuzz target `frame`: the body is `clustergo::fuzzing::frame::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clustergo::fuzzing::frame::run(data));
