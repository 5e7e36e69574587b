use super::*;

fn expand(attr: TokenStream, item: TokenStream) -> String {
    let out = service(attr, item);
    match syn::parse2::<syn::File>(out.clone()) {
        Ok(f) => prettyplease::unparse(&f),
        Err(_) => out.to_string(),
    }
}

#[test]
fn collects_every_error() {
    let out = service(
        quote!(colour = 1),
        quote! {
            trait Bad {
                async fn a(&self, ctx: RpcContext, replyer: Replyer<R>, request: Q);
                fn b(&mut self, ctx: RpcContext, replyer: Replyer<R>, request: Q);
                fn c(&self, ctx: RpcContext, replyer: Replyer<R>, request: &Q) -> u32;
                const X: u8;
            }
        },
    )
    .to_string();
    for needle in [
        "unknown argument",
        "all methods of a service use one form",
        "async service methods return `Result<Response, RpcError>`",
        "the first argument must be `&self`",
        "the request must be an owned type",
        "service methods return nothing",
        "service traits may only contain methods",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in {out}");
    }
    // The original trait is kept so the rest of the crate still type-checks.
    assert!(out.contains("trait Bad"));
}

#[test]
fn clash_is_reported() {
    let out = service(
        TokenStream::new(),
        quote! {
            trait Clashy {
                fn register(&self, ctx: RpcContext, replyer: Replyer<R>, request: Q);
                fn foo(&self, ctx: RpcContext, replyer: Replyer<R>, request: Q);
                fn foo_with_timeout(&self, ctx: RpcContext, replyer: Replyer<R>, request: Q);
            }
        },
    )
    .to_string();
    assert!(
        out.contains("clashes with generated item `register`"),
        "{out}"
    );
    assert!(out.contains("`foo_with_timeout`"), "{out}");
}

#[test]
fn seed_shape_expands() {
    let out = expand(
        TokenStream::new(),
        quote! {
            /// Echoes.
            pub trait EchoService {
                fn on_call(&self, ctx: RpcContext, replyer: Replyer<Response>, request: Request);
            }
        },
    );
    assert!(out.contains("pub mod echo {"), "{out}");
    assert!(out.contains("pub const METHOD: &str = \"echo\";"), "{out}");
    assert!(out.contains("pub use echo::EchoService;"), "{out}");
    assert!(out.contains("pub fn post("), "{out}");
}

/// Compares with `tests/snapshots/<name>`; `UPDATE_SNAPSHOTS=1` rewrites it.
fn snapshot(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {}; run with UPDATE_SNAPSHOTS=1", path.display()));
    assert!(
        expected == actual,
        "snapshot {name} differs (UPDATE_SNAPSHOTS=1 to accept):\n{actual}"
    );
}

#[test]
fn snapshot_seed() {
    let out = expand(
        TokenStream::new(),
        quote! {
            /// Echoes.
            pub trait EchoService {
                /// Answers.
                fn on_call(&self, ctx: RpcContext, replyer: Replyer<Response>, request: Request);
            }
        },
    );
    snapshot("macro_seed.rs.txt", &out);
}

#[test]
fn snapshot_seed_async() {
    let out = expand(
        TokenStream::new(),
        quote! {
            /// Echoes.
            pub trait EchoService {
                /// Answers.
                async fn on_call(&self, ctx: RpcContext, request: Request) -> Result<Response, RpcError>;
            }
        },
    );
    snapshot("macro_seed_async.rs.txt", &out);
}

#[test]
fn async_form_errors() {
    let out = service(
        TokenStream::new(),
        quote! {
            trait Bad {
                async fn a(&self, ctx: RpcContext, request: Q) -> R;
                async fn b(&self, ctx: RpcContext, replyer: Replyer<R>, request: Q) -> Result<R, RpcError>;
                fn c(&self, ctx: RpcContext, replyer: Replyer<R>, request: Q);
            }
        },
    )
    .to_string();
    for needle in [
        "async service methods return `Result<Response, RpcError>`",
        "expected arguments `&self, ctx: RpcContext, request: Request`",
        "all methods of a service use one form",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in {out}");
    }
}

#[test]
fn snapshot_keywords_codec_package_crate() {
    let out = expand(
        quote!(codec = self::my::Codec, package = "kw.pkg", crate = ::cg),
        quote! {
            pub(crate) trait ABCService {
                fn r#type(&self, ctx: RpcContext, replyer: Replyer<r#match::Out>, request: In);
                #[rpc(name = "wire.Name")]
                fn say_hello(&self, ctx: ::cg::RpcContext, replyer: ::cg::Replyer<Out>, request: Vec<u8>);
                // Paths relative to the trait's module get one more `super`.
                fn relative(&self, ctx: RpcContext, replyer: Replyer<super::pb::Out>, request: Vec<self::pb::In>);
            }
        },
    );
    snapshot("macro_keywords.rs.txt", &out);
}
