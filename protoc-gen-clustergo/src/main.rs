//! `protoc-gen-clustergo`: protoc plugin. Reads a `CodeGeneratorRequest` on stdin and
//! writes a `CodeGeneratorResponse` on stdout; all logic is in
//! [`protoc_gen_clustergo::execute`].

use std::io::{Read, Write};

fn main() -> std::io::Result<()> {
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input)?;
    let output = protoc_gen_clustergo::execute(&input);
    std::io::stdout().write_all(&output)
}
