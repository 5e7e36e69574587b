//! cargo-fuzz target `handshake`: the body is `clustergo::fuzzing::handshake::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clustergo::fuzzing::handshake::run(data));
