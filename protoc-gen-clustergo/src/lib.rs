//! Code generation for clustergo services.
//!
//! One [`model`] and one [`emit`]ter serve three front-ends, so their output has the
//! same shape (see [`naming`] for every generated name):
//!
//! - the `protoc-gen-clustergo` protoc plugin ([`plugin`], feature `protoc`), run by
//!   the repository's `gen.sh`;
//! - the build.rs API [`configure`] (feature `build`, on by default): protox parses
//!   the `.proto` files (no system `protoc` needed), prost-build writes messages,
//!   and the service modules come from the same lowering and layout as the plugin's;
//! - the `#[clustergo::service]` attribute macro (crate `clustergo-macros`), which
//!   parses a Rust trait into the model.
//!
//! Generated code reaches the runtime only through `::clustergo::codegen::…`.
//!
//! # The generated module
//!
//! For seed file `echo.proto` (messages `request`, `response`, no `service` block):
//!
//! ```text
//! pub mod echo {
//!     pub struct Request { .. }  pub struct Response { .. }      // prost
//!     pub const METHOD: &str = "echo";
//!     pub type Replyer = clustergo::Replyer<Response, ProstCodec>;
//!     pub trait EchoService: Send + Sync + 'static {
//!         fn on_call(&self, ctx: RpcContext, replyer: Replyer, request: Request);
//!     }
//!     pub fn register<S: EchoService>(svc: S);              // default node
//!     pub fn register_on<S: EchoService>(node: &Node, svc: S);
//!     pub async fn call(peer, &Request) -> Result<Response, RpcError>;
//!     pub async fn call_with_timeout(peer, &Request, Duration) -> Result<Response, RpcError>;
//!     pub fn call_with_callback(peer, deadline: Instant, &Request, cb) -> CallHandle;
//!     pub fn post(peer, &Request) -> Result<(), RpcError>;
//!     pub struct EchoClient;  // EchoClient::new(&node).call(..) etc. for other nodes
//! }
//! ```
//!
//! A `service Greeter { rpc SayHello(A) returns (B); }` in package `pkg` becomes
//! `pkg::greeter` with `SAY_HELLO_METHOD = "pkg.Greeter.SayHello"`,
//! `SayHelloReplyer`, trait `GreeterService { fn say_hello(..) }`, `say_hello`,
//! `say_hello_with_timeout`, `say_hello_with_callback`, `post_say_hello`, and
//! `GreeterClient`.
//!
//! # Message ids
//!
//! `import "clustergo/options.proto";` ([`OPTIONS_PROTO`], shipped here) and
//! `message Move { option (clustergo.cmd) = 12; }` add, to the module holding
//! `Move`, `pub const MOVE_CMD: u16 = 12;` and `pub fn register_messages(node:
//! &Node)`, which registers every such message with `Node::register_pb_message`.
//! Ids outside `1..=65535` and an id twice in one package are generator errors.

pub mod emit;
pub mod model;
pub mod naming;

#[cfg(feature = "build")]
mod build;
#[cfg(feature = "protoc")]
mod descriptor;
#[cfg(feature = "protoc")]
mod generate;
#[cfg(feature = "protoc")]
mod options;
#[cfg(feature = "protoc")]
pub mod plugin;
#[cfg(feature = "protoc")]
mod tree;

#[cfg(feature = "build")]
pub use build::{Builder, configure};
pub use model::HandlerForm;
#[cfg(feature = "protoc")]
pub use options::{OPTIONS_FILE, OPTIONS_PROTO};
#[cfg(feature = "protoc")]
pub use plugin::execute;
