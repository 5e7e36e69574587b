//! Generates service modules with the build.rs front-end of protoc-gen-clustergo
//! (protox + prost-build; no system protoc). Used by the `buildrs_echo` example.

fn main() -> std::io::Result<()> {
    // The seed echo service and the lobby services of the repository's proto/, plus
    // an example-only greeter: same descriptions as the checked-in `service` crate
    // (which the plugin made), so the two interoperate.
    protoc_gen_clustergo::configure().compile_protos(
        &[
            "../proto/echo.proto",
            "../proto/test.proto",
            "../proto/common.proto",
            "../proto/lobby.proto",
            "../proto/profile.proto",
            "../proto/room.proto",
            "proto/greeter.proto",
        ],
        &["../proto", "proto"],
    )?;
    // Tricky inputs (keywords as names, deep packages, several services per file,
    // imports, well-known types, a service without methods, message ids): generated
    // here so that compiling the examples proves the output compiles.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("tricky");
    protoc_gen_clustergo::configure()
        .out_dir(out)
        .compile_protos(
            &[
                "../protoc-gen-clustergo/tests/fixtures/keywords.proto",
                "../protoc-gen-clustergo/tests/fixtures/nested.proto",
                "../protoc-gen-clustergo/tests/fixtures/no_methods.proto",
                "../protoc-gen-clustergo/tests/fixtures/cmds.proto",
            ],
            &["../protoc-gen-clustergo/tests/fixtures"],
        )
}
