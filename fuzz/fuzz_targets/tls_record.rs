//! cargo-fuzz target `tls_record`: the body is `clustergo::fuzzing::tls_record::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clustergo::fuzzing::tls_record::run(data));
