//! cargo-fuzz target `gate_ws`: the body is `clustergo::fuzzing::gate_ws::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clustergo::fuzzing::gate_ws::run(data));
