//! cargo-fuzz target `gate_tcp`: the body is `clustergo::fuzzing::gate_tcp::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clustergo::fuzzing::gate_tcp::run(data));
