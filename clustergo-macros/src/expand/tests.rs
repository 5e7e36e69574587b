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
        "async methods are not supported",
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
