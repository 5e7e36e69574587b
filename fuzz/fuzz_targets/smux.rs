//! cargo-fuzz target `smux`: the body is `clustergo::fuzzing::smux::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clustergo::fuzzing::smux::run(data));
