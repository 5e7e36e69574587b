//! The `#[clustergo::service]` attribute macro.
//!
//! This crate is a thin shim: [`service`] hands its tokens to `expand::service`
//! (plain `proc_macro2` code), which parses the trait into the shared model of
//! `protoc-gen-clustergo` and calls the same emitter the protoc plugin and the
//! build.rs API use. Use it through the re-export `clustergo::service`.

use proc_macro::TokenStream;

mod expand;

/// Turns a trait into a clustergo service module.
///
/// ```ignore
/// use clustergo::{Replyer, RpcContext};
///
/// #[clustergo::service]
/// pub trait EchoService {
///     /// The seed shape: `on_call`, wire name "echo".
///     fn on_call(&self, ctx: RpcContext, replyer: Replyer<Response>, request: Request);
/// }
/// // → pub mod echo { trait EchoService, Replyer, register, register_on, call,
/// //   call_with_timeout, call_with_callback, post, EchoClient }
/// //   and `pub use echo::EchoService;`
/// ```
///
/// Each method must be `fn name(&self, ctx: RpcContext, replyer: Replyer<Resp>,
/// request: Req);` with a `snake_case` name and no body. Items are named as in
/// `protoc_gen_clustergo::naming`: a method `m` adds `M_METHOD`, `MReplyer`,
/// `m`, `m_with_timeout`, `m_with_callback` and `post_m`; `on_call` is the
/// seed's single method (`Replyer`, `call`, …, `post`).
///
/// The async form writes `async fn name(&self, ctx: RpcContext, request: Req) ->
/// Result<Resp, RpcError>`. A method with a `Streaming<Req>` or `StreamSender<Resp>`
/// argument is a streaming method, always an `async fn`: `(.., request: Req,
/// responses: StreamSender<Resp>) -> Result<(), RpcError>` (server-streaming),
/// `(.., requests: Streaming<Req>) -> Result<Resp, RpcError>` (client-streaming) or
/// `(.., requests: Streaming<Req>, responses: StreamSender<Resp>) -> Result<(),
/// RpcError>` (bidirectional); it adds `M_METHOD`, `m` and `m_with_timeout`.
///
/// Wire names: `on_call` → snake-case service base (`EchoService` → `"echo"`);
/// any other method `m` of trait `BService` or `B` → `"B.M"` (or `"pkg.B.M"` with
/// `package`), which is what a `.proto` `service B` or `service BService`
/// `{ rpc M .. }` gets: the same base names the module, trait and wire.
///
/// Request and response types may be written relative to the trait's module
/// (`super::pb::Ping`, `self::..`); each must be a message of the codec, checked
/// with an error at the type.
///
/// Arguments: `codec = path::To::Codec` (a `clustergo::Codec` marker for non-prost
/// types; default `ProstCodec`), `package = "pkg"`. Per method:
/// `#[rpc(name = "wire.name")]` overrides the wire name.
///
/// The module's items see the trait's surroundings through `use super::*;`.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::service(attr.into(), item.into()).into()
}
