//! cargo-fuzz target `go_handshake`: the body is `clustergo::fuzzing::go_handshake::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clustergo::fuzzing::go_handshake::run(data));
