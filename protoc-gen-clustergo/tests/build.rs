//! The build.rs front-end: snapshots of what it writes, and its errors.

mod common;

use std::path::Path;

fn generated(dir: &Path) -> String {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let name = p.strip_prefix(dir).unwrap().display().to_string();
                files.push((name, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    common::joined(&files)
}

fn fixtures(name: &str) -> String {
    common::root()
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn seed_files_and_services_from_repo_protos() {
    let out = tempfile::tempdir().unwrap();
    let proto = common::root().join("../proto");
    let files: Vec<_> = [
        "echo.proto",
        "test.proto",
        "common.proto",
        "lobby.proto",
        "profile.proto",
    ]
    .iter()
    .map(|f| proto.join(f))
    .collect();
    protoc_gen_clustergo::configure()
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile_protos(&files, &[&proto])
        .unwrap();
    common::snapshot("build_repo.rs.txt", &generated(out.path()));
}

#[test]
fn seed_echo_async_form() {
    let out = tempfile::tempdir().unwrap();
    let proto = common::root().join("../proto");
    protoc_gen_clustergo::configure()
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .handler(protoc_gen_clustergo::HandlerForm::Async)
        .compile_protos(&[proto.join("echo.proto")], &[&proto])
        .unwrap();
    common::snapshot("build_echo_async.rs.txt", &generated(out.path()));
}

#[test]
fn keywords_and_nested_packages() {
    let out = tempfile::tempdir().unwrap();
    protoc_gen_clustergo::configure()
        .out_dir(out.path())
        .include_file("tricky.rs")
        .emit_rerun_if_changed(false)
        .compile_protos(
            &[fixtures("keywords.proto"), fixtures("nested.proto")],
            &[fixtures("")],
        )
        .unwrap();
    common::snapshot("build_tricky.rs.txt", &generated(out.path()));
}

#[test]
fn streaming_methods_of_the_three_kinds() {
    let out = tempfile::tempdir().unwrap();
    protoc_gen_clustergo::configure()
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile_protos(&[fixtures("streaming.proto")], &[fixtures("")])
        .unwrap();
    let services = std::fs::read_to_string(out.path().join("s.clustergo.rs")).unwrap();
    for needle in [
        "register_server_stream",
        "register_client_stream",
        "register_bidi",
        "call_server_stream",
        "call_client_stream",
        "call_bidi",
    ] {
        assert!(services.contains(needle), "{needle} not in {services}");
    }
}

#[test]
fn clashes_and_unsupported_input_are_errors_naming_file_and_items() {
    assert_rejected(common::REJECTED);
}

/// Each fixture set fails to compile with an error containing its texts.
fn assert_rejected(cases: &[(&[&str], &[&str])]) {
    for (files, needles) in cases {
        let out = tempfile::tempdir().unwrap();
        let paths: Vec<String> = files.iter().map(|f| fixtures(f)).collect();
        let err = protoc_gen_clustergo::configure()
            .out_dir(out.path())
            .emit_rerun_if_changed(false)
            .compile_protos(&paths, &[fixtures("")])
            .unwrap_err()
            .to_string();
        for needle in *needles {
            assert!(err.contains(needle), "{files:?}: {needle:?} not in {err:?}");
        }
    }
}

#[test]
fn proto3_optional_and_maps_make_no_message_module() {
    let out = tempfile::tempdir().unwrap();
    protoc_gen_clustergo::configure()
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile_protos(&[fixtures("optional_ok.proto")], &[fixtures("")])
        .unwrap();
    let services = std::fs::read_to_string(out.path().join("opt.clustergo.rs")).unwrap();
    assert!(services.contains("pub mod room"), "{services}");
}

#[test]
fn unparsable_proto_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.proto");
    std::fs::write(&bad, "syntax = \"proto3\"; message {").unwrap();
    let err = protoc_gen_clustergo::configure()
        .out_dir(dir.path())
        .emit_rerun_if_changed(false)
        .compile_protos(&[&bad], &[dir.path()])
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
}

#[test]
fn options_import_needs_no_include_path_and_makes_no_module() {
    // `includes` holds only the fixtures: `clustergo/options.proto` is served by the
    // builder itself.
    let out = tempfile::tempdir().unwrap();
    protoc_gen_clustergo::configure()
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile_protos(
            &[fixtures("cmds.proto"), fixtures("cmd_seed_ok.proto")],
            &[fixtures("")],
        )
        .unwrap();
    let read = |f: &str| std::fs::read_to_string(out.path().join(f)).unwrap();
    let ids = read("ids.clustergo.rs");
    for want in [
        "pub const MOVE_CMD: u16 = 12;",
        "pub const ROOM_INFO_CMD: u16 = 65535;",
        "pub const TYPE_CMD: u16 = 1;",
        "register_pb_message::<room::Info>(node, ROOM_INFO_CMD)",
    ] {
        assert!(ids.contains(want), "{want:?} not in {ids}");
    }
    assert!(!ids.contains("NO_ID_CMD"), "{ids}");
    let seed = read("cmd_seed_ok.rs");
    assert!(seed.contains("pub const RESPONSE_CMD: u16 = 6;"), "{seed}");
    let tree = read("clustergo.rs");
    assert!(!tree.contains("mod clustergo"), "{tree}");
    assert!(!tree.contains("mod google"), "{tree}");
}

#[test]
fn bad_message_ids_are_errors_naming_file_and_messages() {
    assert_rejected(common::BAD_IDS);
}
