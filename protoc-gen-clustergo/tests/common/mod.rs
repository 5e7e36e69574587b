//! Shared helpers: build requests from fixture protos, compare snapshots.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use prost_types::compiler::CodeGeneratorRequest;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

/// `files` (names relative to one of `includes`, or the crate's `proto/`, which
/// holds `clustergo/options.proto`) compiled by protox.
fn compile(files: &[&str], includes: &[PathBuf]) -> protox::Compiler {
    let mut includes = includes.to_vec();
    includes.push(root().join("proto"));
    let mut compiler = protox::Compiler::new(includes).unwrap();
    compiler
        .include_source_info(true)
        .include_imports(true)
        .open_files(files)
        .unwrap();
    compiler
}

/// A `CodeGeneratorRequest` for `files` (names relative to one of `includes`),
/// parsed with protox, the way protoc would send it, except that options'
/// extensions (message ids) are lost: see [`request_bytes`].
pub fn request(files: &[&str], includes: &[PathBuf], parameter: &str) -> CodeGeneratorRequest {
    CodeGeneratorRequest {
        file_to_generate: files.iter().map(|f| f.to_string()).collect(),
        parameter: (!parameter.is_empty()).then(|| parameter.to_owned()),
        proto_file: compile(files, includes).file_descriptor_set().file,
        compiler_version: None,
    }
}

/// An encoded `FileDescriptorSet` with its files left encoded.
#[derive(Clone, PartialEq, prost::Message)]
struct EncodedSet {
    #[prost(bytes = "vec", repeated, tag = "1")]
    file: Vec<Vec<u8>>,
}

/// The encoded request protoc would send for `files`, options' extensions (message
/// ids) included.
pub fn request_bytes(files: &[&str], includes: &[PathBuf], parameter: &str) -> Vec<u8> {
    use prost::Message;
    let set = compile(files, includes).encode_file_descriptor_set();
    let mut req = CodeGeneratorRequest {
        proto_file: Vec::new(),
        ..request(files, includes, parameter)
    }
    .encode_to_vec();
    // `FileDescriptorSet.file` is field 1, `CodeGeneratorRequest.proto_file` 15.
    for file in EncodedSet::decode(set.as_slice()).unwrap().file {
        prost::encoding::bytes::encode(15, &file, &mut req);
    }
    req
}

/// Compares `actual` with `tests/snapshots/<name>`; `UPDATE_SNAPSHOTS=1` rewrites it.
pub fn snapshot(name: &str, actual: &str) {
    let path = root().join("tests/snapshots").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing snapshot {}; run with UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    if expected != actual {
        let diff_at = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "snapshot {name} differs from line {}:\n  expected: {:?}\n  actual:   {:?}\n\
             (rerun with UPDATE_SNAPSHOTS=1 to accept)",
            diff_at + 1,
            expected.lines().nth(diff_at),
            actual.lines().nth(diff_at)
        );
    }
}

/// All files of a response as one text, in name order.
pub fn joined(files: &[(String, String)]) -> String {
    let mut files = files.to_vec();
    files.sort();
    files
        .iter()
        .map(|(n, c)| format!("//// ===== {n} =====\n{c}"))
        .collect()
}

/// Fixture sets (in `tests/fixtures`) that every descriptor front-end must reject,
/// with the texts the error must contain: the proto file and the clashing items.
pub const REJECTED: &[(&[&str], &[&str])] = &[
    (
        &["split_a.proto", "split_b.proto"],
        &[
            "split_b.proto: service `RoomService` would become module `room`",
            "message `Room` of split_a.proto",
        ],
    ),
    (
        &["client_clash.proto"],
        &[
            "client_clash.proto: service `Svc`",
            "`SvcClient::new`",
            "constructor",
        ],
    ),
    (
        &["parent.proto", "child.proto"],
        &[
            "parent.proto: service `Child` would become module `child`",
            "package `pp.child`",
        ],
    ),
];

/// Fixture sets with bad message ids (`option (clustergo.cmd)`) that every
/// descriptor front-end must reject, with the texts the error must contain: the
/// file and, for a repeated id, both messages.
pub const BAD_IDS: &[(&[&str], &[&str])] = &[
    (
        &["cmd_dup_a.proto", "cmd_dup_b.proto"],
        &[
            "cmd_dup_b.proto: message `Chat` repeats id 7 of message `Move` \
             (cmd_dup_a.proto) in package `dup`",
        ],
    ),
    (
        &["cmd_range.proto"],
        &[
            "cmd_range.proto: message `Zero`: option (clustergo.cmd) = 0 is not a valid id",
            "cmd_range.proto: message `Big`: option (clustergo.cmd) = 70000 is not a valid id",
            "1..=65535",
        ],
    ),
    (
        &["cmd_seed.proto"],
        &[
            "cmd_seed.proto: message `response` repeats id 5 of message `request` \
             (cmd_seed.proto) in seed file `cmd_seed.proto`",
        ],
    ),
];
