//! Shared helpers: build requests from fixture protos, compare snapshots.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use prost_types::compiler::CodeGeneratorRequest;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

/// A `CodeGeneratorRequest` for `files` (names relative to one of `includes`),
/// parsed with protox, the way protoc would send it.
pub fn request(files: &[&str], includes: &[PathBuf], parameter: &str) -> CodeGeneratorRequest {
    let fds = protox::Compiler::new(includes)
        .unwrap()
        .include_source_info(true)
        .include_imports(true)
        .open_files(files)
        .unwrap()
        .file_descriptor_set();
    CodeGeneratorRequest {
        file_to_generate: files.iter().map(|f| f.to_string()).collect(),
        parameter: (!parameter.is_empty()).then(|| parameter.to_owned()),
        proto_file: fds.file,
        compiler_version: None,
    }
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
