//! cargo-fuzz target `discovery`: the body is `clustergo::fuzzing::discovery::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clustergo::fuzzing::discovery::run(data));
