//! The protoc plugin, driven with in-memory requests: snapshots of its output and its
//! error responses.

mod common;

use prost::Message;
use prost_types::compiler::{CodeGeneratorRequest, CodeGeneratorResponse};
use protoc_gen_clustergo::plugin::Params;

fn run(req: &CodeGeneratorRequest) -> CodeGeneratorResponse {
    run_encoded(&req.encode_to_vec())
}

fn run_encoded(req: &[u8]) -> CodeGeneratorResponse {
    let out = protoc_gen_clustergo::execute(req);
    CodeGeneratorResponse::decode(out.as_slice()).expect("response decodes")
}

fn files(resp: &CodeGeneratorResponse) -> Vec<(String, String)> {
    assert_eq!(resp.error, None, "unexpected error");
    assert_eq!(resp.supported_features, Some(1), "declares proto3 optional");
    resp.file
        .iter()
        .map(|f| (f.name().to_owned(), f.content().to_owned()))
        .collect()
}

fn repo_proto() -> std::path::PathBuf {
    common::root().join("../proto")
}

fn fixtures() -> std::path::PathBuf {
    common::root().join("tests/fixtures")
}

#[test]
fn seed_echo() {
    let resp = run_encoded(&common::request_bytes(
        &["echo.proto"],
        &[repo_proto()],
        "include_file=mod.rs",
    ));
    common::snapshot("plugin_seed_echo.rs.txt", &common::joined(&files(&resp)));
}

#[test]
fn seed_echo_async_form() {
    let resp = run_encoded(&common::request_bytes(
        &["echo.proto"],
        &[repo_proto()],
        "handler=async",
    ));
    common::snapshot(
        "plugin_seed_echo_async.rs.txt",
        &common::joined(&files(&resp)),
    );
}

#[test]
fn lobby_with_package_imports_and_two_services() {
    let resp = run_encoded(&common::request_bytes(
        &["common.proto", "lobby.proto"],
        &[repo_proto()],
        "include_file=packages.rs",
    ));
    common::snapshot("plugin_lobby.rs.txt", &common::joined(&files(&resp)));
}

#[test]
fn keywords_as_names() {
    let resp = run(&common::request(&["keywords.proto"], &[fixtures()], ""));
    common::snapshot("plugin_keywords.rs.txt", &common::joined(&files(&resp)));
}

#[test]
fn nested_packages_and_several_services() {
    let resp = run(&common::request(
        &["nested.proto", "shared.proto"],
        &[fixtures()],
        "include_file=tree.rs",
    ));
    common::snapshot("plugin_nested.rs.txt", &common::joined(&files(&resp)));
}

#[test]
fn streaming_methods_of_the_three_kinds() {
    let resp = run(&common::request(&["streaming.proto"], &[fixtures()], ""));
    common::snapshot("plugin_streaming.rs.txt", &common::joined(&files(&resp)));
    // In the replyer form too, only the unary method gets a replyer.
    let resp = run(&common::request(
        &["streaming.proto"],
        &[fixtures()],
        "handler=async",
    ));
    let async_form = common::joined(&files(&resp));
    assert!(async_form.contains("fn watch("), "{async_form}");
    assert!(!async_form.contains("WatchReplyer"), "{async_form}");
}

#[test]
fn seed_message_clashing_with_generated_item_is_an_error() {
    let resp = run(&common::request(&["seed_clash.proto"], &[fixtures()], ""));
    let err = resp.error.expect("error response");
    assert!(err.contains("seed_clash.proto"), "{err}");
    assert!(err.contains("`Replyer`"), "{err}");
}

#[test]
fn malformed_request_is_an_error_response() {
    let out = protoc_gen_clustergo::execute(&[0xff, 0xff, 0xff, 0x01, 0x02]);
    let resp = CodeGeneratorResponse::decode(out.as_slice()).unwrap();
    assert!(
        resp.error
            .unwrap()
            .contains("malformed CodeGeneratorRequest")
    );
}

#[test]
fn bad_parameters_are_errors() {
    for (param, needle) in [
        ("colour=blue", "unknown parameter `colour`"),
        ("include_file", "needs a value"),
        ("include_file=mod.txt", "must name a .rs file"),
        ("runtime_crate=not a path", "must be a Rust path"),
        ("handler=sync", "handler must be `replyer` or `async`"),
    ] {
        let resp = run(&common::request(&["echo.proto"], &[repo_proto()], param));
        let err = resp.error.unwrap_or_default();
        assert!(err.contains(needle), "{param}: {err}");
    }
    assert_eq!(
        Params::parse(" include_file = x.rs ,"),
        Ok(Params {
            include_file: Some("x.rs".into()),
            runtime_crate: None,
            handler: protoc_gen_clustergo::HandlerForm::Replyer,
        })
    );
}

#[test]
fn unknown_file_to_generate_is_an_error() {
    let mut req = common::request(&["echo.proto"], &[repo_proto()], "");
    req.file_to_generate.push("nope.proto".into());
    let err = run(&req).error.unwrap();
    assert!(err.contains("nope.proto"), "{err}");
}

#[test]
fn file_without_service_or_seed_shape_generates_nothing() {
    let resp = run(&common::request(&["shared.proto"], &[fixtures()], ""));
    assert!(files(&resp).is_empty());
}

#[test]
fn runtime_crate_parameter_changes_the_door() {
    let resp = run(&common::request(
        &["echo.proto"],
        &[repo_proto()],
        "runtime_crate=::cg",
    ));
    let (_, text) = &files(&resp)[0];
    assert!(text.contains("::cg::codegen::ProstCodec"), "{text}");
    assert!(!text.contains("::clustergo::"), "{text}");
}

#[test]
fn service_module_clashing_with_message_module_is_an_error() {
    // protoc itself would reject a service and a message of the same name, so build
    // the request by hand from a valid file and rename the service.
    let mut req = common::request(&["module_clash_ok.proto"], &[fixtures()], "");
    req.proto_file[0].service[0].name = Some("Room".into());
    let err = run(&req).error.expect("error response");
    assert!(err.contains("module_clash_ok.proto"), "{err}");
    assert!(err.contains("module `room`"), "{err}");
}

#[test]
fn unknown_message_type_is_an_error() {
    use prost_types::{FileDescriptorProto, MethodDescriptorProto, ServiceDescriptorProto};
    let file = FileDescriptorProto {
        name: Some("hand.proto".into()),
        package: Some("hand".into()),
        service: vec![ServiceDescriptorProto {
            name: Some("Svc".into()),
            method: vec![MethodDescriptorProto {
                name: Some("Go".into()),
                input_type: Some(".hand.Missing".into()),
                output_type: Some(".hand.Missing".into()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let req = CodeGeneratorRequest {
        file_to_generate: vec!["hand.proto".into()],
        proto_file: vec![file],
        ..Default::default()
    };
    let err = run(&req).error.expect("error response");
    assert!(
        err.contains("hand.proto: method `Svc.Go`: unknown message type `.hand.Missing`"),
        "{err}"
    );
}

#[test]
fn package_without_messages_still_includes_prost_file() {
    // protoc-gen-prost writes `only.rs` (empty) for it, so the tree includes it.
    let resp = run(&common::request(
        &["only_service.proto", "shared.proto"],
        &[fixtures()],
        "include_file=tree.rs",
    ));
    let files = files(&resp);
    let tree = &files.iter().find(|(n, _)| n == "tree.rs").unwrap().1;
    assert!(tree.contains("include!(\"only.rs\")"), "{tree}");
    assert!(tree.contains("include!(\"only.clustergo.rs\")"), "{tree}");
    assert!(tree.contains("include!(\"x.shared.rs\")"), "{tree}");
}

#[test]
fn service_without_methods_generates_a_trivial_module() {
    let resp = run(&common::request(&["no_methods.proto"], &[fixtures()], ""));
    let files = files(&resp);
    let text = &files[0].1;
    assert!(text.contains("pub trait NothingService"), "{text}");
    assert!(
        text.contains("pub fn register_on<S: NothingService>"),
        "{text}"
    );
}

#[test]
fn odd_names_never_crash_the_plugin() {
    let mut req = common::request(&["no_methods.proto"], &[fixtures()], "");
    for name in ["_", "__", "Self", "self", "9lives"] {
        req.proto_file[0].service[0].name = Some(name.into());
        let out = protoc_gen_clustergo::execute(&req.encode_to_vec());
        // Either a file or an error, but always a decodable response.
        let resp = CodeGeneratorResponse::decode(out.as_slice()).unwrap();
        assert!(resp.error.is_some() || !resp.file.is_empty(), "{name}");
    }
}

#[test]
fn clashes_and_unsupported_input_are_errors_naming_file_and_items() {
    for (files, needles) in common::REJECTED {
        let resp = run(&common::request(files, &[fixtures()], "include_file=t.rs"));
        let err = resp.error.unwrap_or_default();
        for needle in *needles {
            assert!(err.contains(needle), "{files:?}: {needle:?} not in {err:?}");
        }
        assert!(resp.file.is_empty(), "{files:?}");
    }
}

#[test]
fn proto3_optional_and_maps_make_no_message_module() {
    let resp = run(&common::request(&["optional_ok.proto"], &[fixtures()], ""));
    let files = files(&resp);
    assert!(files[0].1.contains("pub mod room"), "{}", files[0].1);
}

#[test]
fn message_ids_make_constants_and_register_messages() {
    let resp = run_encoded(&common::request_bytes(
        &["cmds.proto"],
        &[fixtures()],
        "include_file=tree.rs",
    ));
    let files = files(&resp);
    common::snapshot("plugin_cmds.rs.txt", &common::joined(&files));
    // The options file is an import, never a module.
    let tree = &files.iter().find(|(n, _)| n == "tree.rs").unwrap().1;
    assert!(!tree.contains("mod clustergo"), "{tree}");

    let resp = run_encoded(&common::request_bytes(
        &["cmds.proto"],
        &[fixtures()],
        "runtime_crate=::cg",
    ));
    let (_, text) = &self::files(&resp)[0];
    assert!(
        text.contains("fn register_messages(node: &::cg::codegen::Node)"),
        "{text}"
    );
    assert!(!text.contains("::clustergo::"), "{text}");
}

#[test]
fn message_ids_are_not_read_without_the_declaration() {
    // Extensions dropped (as a prost-types round trip does): no ids, no items.
    let resp = run(&common::request(&["cmds.proto"], &[fixtures()], ""));
    assert!(files(&resp).is_empty());
}

#[test]
fn bad_message_ids_are_errors_naming_file_and_messages() {
    for (files, needles) in common::BAD_IDS {
        let resp = run_encoded(&common::request_bytes(files, &[fixtures()], ""));
        let err = resp.error.unwrap_or_default();
        for needle in *needles {
            assert!(err.contains(needle), "{files:?}: {needle:?} not in {err:?}");
        }
        assert!(resp.file.is_empty(), "{files:?}");
    }
}
