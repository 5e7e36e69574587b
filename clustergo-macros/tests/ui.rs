//! trybuild: inputs that must compile, and one `.stderr` snapshot per macro
//! diagnostic (`TRYBUILD=overwrite` rewrites them).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
