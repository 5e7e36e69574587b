//! End to end with a real `protoc` (`$PROTOC`, else `protoc` on PATH, else the
//! vendored one): the plugin binary reproduces the checked-in `service/` files,
//! reads message ids, and reports unsupported input through protoc.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn protoc() -> PathBuf {
    if let Some(p) = std::env::var_os("PROTOC") {
        return p.into();
    }
    let on_path = Command::new("protoc").arg("--version").output();
    if on_path.is_ok_and(|o| o.status.success()) {
        return "protoc".into();
    }
    protoc_bin_vendored::protoc_bin_path().expect("vendored protoc")
}

fn run(files: &[&str], include: &Path, out: &Path, opt: &str) -> std::process::Output {
    // As `gen.sh` does: the crate's `proto/` holds `clustergo/options.proto`.
    run_with(files, &[include, &common::root().join("proto")], out, opt)
}

fn run_with(files: &[&str], includes: &[&Path], out: &Path, opt: &str) -> std::process::Output {
    let mut cmd = Command::new(protoc());
    for include in includes {
        cmd.arg("-I").arg(include);
    }
    cmd.arg(format!(
        "--plugin=protoc-gen-clustergo={}",
        env!("CARGO_BIN_EXE_protoc-gen-clustergo")
    ))
    .arg(format!("--clustergo_out={}", out.display()));
    if !opt.is_empty() {
        cmd.arg(format!("--clustergo_opt={opt}"));
    }
    cmd.args(files).output().expect("protoc runs")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn protoc_with_plugin_reproduces_checked_in_service_crate() {
    let proto = common::root().join("../proto");
    let service = common::root().join("../service/src");
    let out = tempfile::tempdir().unwrap();

    let o = run(&["echo.proto"], &proto, out.path(), "");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        read(&out.path().join("echo.rs")),
        read(&service.join("echo.rs"))
    );

    let o = run(
        &["common.proto", "lobby.proto", "profile.proto", "room.proto"],
        &proto,
        out.path(),
        "include_file=packages.rs",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "game.lobby.clustergo.rs",
        "game.profile.clustergo.rs",
        "game.room.clustergo.rs",
        "packages.rs",
    ] {
        assert_eq!(read(&out.path().join(f)), read(&service.join(f)), "{f}");
    }
}

#[test]
fn protoc_reports_bad_parameter() {
    let fixtures = common::root().join("tests/fixtures");
    let out = tempfile::tempdir().unwrap();
    let o = run(&["shared.proto"], &fixtures, out.path(), "bogus=1");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unknown parameter `bogus`"), "{err}");
}

#[test]
fn write_include_serves_protoc_users_and_ids_are_checked() {
    let fixtures = common::root().join("tests/fixtures");
    let include = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_protoc-gen-clustergo"))
        .arg("--write-include")
        .arg(include.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        read(&include.path().join("clustergo/options.proto")),
        protoc_gen_clustergo::OPTIONS_PROTO
    );

    let out = tempfile::tempdir().unwrap();
    let o = run_with(
        &["cmds.proto"],
        &[&fixtures, include.path()],
        out.path(),
        "",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ids = read(&out.path().join("ids.clustergo.rs"));
    assert!(
        ids.contains("pub const ROOM_INFO_CMD: u16 = 65535;"),
        "{ids}"
    );

    for (files, needles) in common::BAD_IDS {
        let o = run_with(files, &[&fixtures, include.path()], out.path(), "");
        assert!(!o.status.success(), "{files:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        for needle in *needles {
            assert!(err.contains(needle), "{files:?}: {needle:?} not in {err}");
        }
    }
}
