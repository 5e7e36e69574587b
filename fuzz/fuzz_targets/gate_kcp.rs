//! cargo-fuzz target `gate_kcp`: the body is `clustergo::fuzzing::gate_kcp::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clustergo::fuzzing::gate_kcp::run(data));
