//! Compiles `proto/bench.proto` into prost messages and a tonic service without a
//! system `protoc`: protox parses the file in pure Rust.

fn main() {
    println!("cargo:rerun-if-changed=proto/bench.proto");
    let fds = protox::compile(["proto/bench.proto"], ["proto"]).unwrap();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)
        .unwrap();
}
