//! `protoc-gen-clustergo`: protoc plugin. Reads a `CodeGeneratorRequest` on stdin and
//! writes a `CodeGeneratorResponse` on stdout; all logic is in
//! [`protoc_gen_clustergo::execute`].
//!
//! `protoc-gen-clustergo --write-include DIR` instead writes the shipped
//! `DIR/clustergo/options.proto`, for `protoc -I DIR` (installed binaries have no
//! source tree to point `-I` at).

use std::io::{Read, Write};
use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    match args.as_slice() {
        [] => {}
        [flag, dir] if flag == "--write-include" => {
            let path = PathBuf::from(dir).join(protoc_gen_clustergo::OPTIONS_FILE);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            return std::fs::write(path, protoc_gen_clustergo::OPTIONS_PROTO);
        }
        _ => {
            eprintln!(
                "usage: protoc-gen-clustergo (run by protoc)\n       \
                 protoc-gen-clustergo --write-include DIR   (writes DIR/{})",
                protoc_gen_clustergo::OPTIONS_FILE
            );
            std::process::exit(2);
        }
    }
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input)?;
    let output = protoc_gen_clustergo::execute(&input);
    std::io::stdout().write_all(&output)
}
