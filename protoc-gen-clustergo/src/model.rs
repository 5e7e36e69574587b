//! The service model every front-end lowers into.

use proc_macro2::{Span, TokenStream};
use quote::quote;

use crate::naming::{MethodNames, ServiceNames};

/// One service: becomes one module (see [`crate::naming`] for the item names).
#[derive(Debug, Clone)]
pub struct Service {
    /// Service name as written (proto `Greeter`, seed file stem `echo`, Rust trait
    /// `EchoService`); all item names derive from it.
    pub name: String,
    /// Doc lines for the trait.
    pub docs: Vec<String>,
    /// The methods, in declaration order.
    pub methods: Vec<Method>,
    /// Path of the `clustergo::Codec` marker used for every method (`None`:
    /// the runtime's `ProstCodec`).
    pub codec: Option<TokenStream>,
    /// Path of the runtime crate (`::clustergo` by default; set it when the
    /// dependency is renamed). Generated code uses only `<runtime>::codegen::…`.
    pub runtime: TokenStream,
    /// How the server side is written: replyer or async trait methods.
    pub handler: HandlerForm,
    /// Where the service was declared (macro diagnostics).
    pub span: Span,
}

/// The shape of a service's trait methods. One per service: a service is served
/// one way, so `register` stays unambiguous. Clients are the same for both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HandlerForm {
    /// `fn m(&self, ctx: RpcContext, replyer: MReplyer, request: Req)`: answer
    /// through the replyer, now or later (the seed's shape, and the fastest).
    #[default]
    Replyer,
    /// `async fn m(&self, ctx: RpcContext, request: Req) -> Result<Resp, RpcError>`:
    /// the future is dropped at the caller's deadline or when its link is lost.
    Async,
}

impl HandlerForm {
    /// Parses a plugin parameter value: `replyer` or `async`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "replyer" => Some(Self::Replyer),
            "async" => Some(Self::Async),
            _ => None,
        }
    }
}

/// How a method's messages flow. Streaming methods are served in the async
/// shape whatever the service's [`HandlerForm`], and called without callbacks
/// or posts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MethodKind {
    /// One request, one response.
    #[default]
    Unary,
    /// One request, a stream of responses (`returns (stream Resp)`).
    ServerStreaming,
    /// A stream of requests, one response (`rpc M(stream Req)`).
    ClientStreaming,
    /// Streams both ways.
    Bidi,
}

impl MethodKind {
    /// The kind of a method whose requests / responses are streamed.
    pub fn new(client_streaming: bool, server_streaming: bool) -> Self {
        match (client_streaming, server_streaming) {
            (false, false) => Self::Unary,
            (false, true) => Self::ServerStreaming,
            (true, false) => Self::ClientStreaming,
            (true, true) => Self::Bidi,
        }
    }

    /// Whether requests come as a stream.
    pub fn client_streams(self) -> bool {
        matches!(self, Self::ClientStreaming | Self::Bidi)
    }

    /// Whether responses go as a stream.
    pub fn server_streams(self) -> bool {
        matches!(self, Self::ServerStreaming | Self::Bidi)
    }
}

/// One method.
#[derive(Debug, Clone)]
pub struct Method {
    /// Method name as written (proto `SayHello`, Rust `say_hello`, or `on_call`).
    pub name: String,
    /// Name on the wire ([`crate::naming::wire_name`]).
    pub wire: String,
    /// Request type, as a path valid inside the generated module.
    pub input: TokenStream,
    /// Response type, as a path valid inside the generated module.
    pub output: TokenStream,
    /// Unary or which way it streams.
    pub kind: MethodKind,
    /// Doc lines for the trait method.
    pub docs: Vec<String>,
    /// Where the method was declared (macro diagnostics).
    pub span: Span,
}

/// Two generated items would have the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameClash {
    /// Index of the method whose items clash (the later of the two).
    pub method: usize,
    /// What clashes with what.
    pub message: String,
}

impl Service {
    /// A service using prost messages.
    pub fn new(name: impl Into<String>, span: Span) -> Self {
        Self {
            name: name.into(),
            docs: Vec::new(),
            methods: Vec::new(),
            codec: None,
            runtime: quote!(::clustergo),
            handler: HandlerForm::Replyer,
            span,
        }
    }

    /// The runtime's door for generated code: `<runtime>::codegen`.
    pub fn runtime_door(&self) -> TokenStream {
        let rt = &self.runtime;
        quote!(#rt::codegen)
    }

    /// The codec marker path.
    pub fn codec(&self) -> TokenStream {
        match &self.codec {
            Some(c) => c.clone(),
            None => {
                let door = self.runtime_door();
                quote!(#door::ProstCodec)
            }
        }
    }

    /// Names of the per-service items.
    pub fn names(&self) -> ServiceNames {
        ServiceNames::new(&self.name)
    }

    /// Names of the items the module defines beside the methods' own: used to reject
    /// messages or methods that would clash with them.
    pub fn fixed_names(&self) -> Vec<String> {
        let n = self.names();
        vec![
            n.service_trait,
            n.client,
            "register".to_owned(),
            "register_on".to_owned(),
        ]
    }

    /// Every pair of generated items with the same name, plus `extra` names already
    /// taken in the module (e.g. prost messages of a seed file).
    ///
    /// Two scopes are checked: the module (fixed items, `extra`, and every method's
    /// constant, replyer and free functions) and the client struct's inherent methods
    /// ([`CLIENT_FIXED`] and every method's calls). Types and values are
    /// kept in one set: stricter than rustc, never weaker.
    pub fn clashes(&self, extra: &[String]) -> Vec<NameClash> {
        let client = self.names().client;
        let mut module = Scope::new(
            self.fixed_names()
                .into_iter()
                .map(|n| {
                    let owner = format!("generated item `{n}`");
                    (n, owner)
                })
                .chain(extra.iter().map(|n| (n.clone(), format!("`{n}`")))),
        );
        let mut out = Vec::new();
        let mut wires: Vec<&str> = Vec::new();
        for (i, m) in self.methods.iter().enumerate() {
            let names = MethodNames::new(&m.name);
            let mine = format!("an item of method `{}`", m.name);
            let mut module_items: Vec<&str> = names.values().to_vec();
            module_items.push(&names.replyer);
            for name in module_items {
                if let Some(owner) = module.take(name, &mine) {
                    out.push(NameClash {
                        method: i,
                        message: format!(
                            "method `{}` generates `{name}`, which clashes with {owner}",
                            m.name
                        ),
                    });
                }
            }
            // Clashes between methods' client methods are already module clashes.
            for name in names.client_methods() {
                if let Some((_, what)) = CLIENT_FIXED.iter().find(|(n, _)| *n == name) {
                    out.push(NameClash {
                        method: i,
                        message: format!(
                            "method `{}` generates `{client}::{name}`, which clashes with \
                             the {what} `{client}::{name}`",
                            m.name
                        ),
                    });
                }
            }
            if wires.contains(&m.wire.as_str()) {
                out.push(NameClash {
                    method: i,
                    message: format!("method `{}` repeats wire name \"{}\"", m.name, m.wire),
                });
            }
            wires.push(&m.wire);
        }
        out
    }
}

/// Inherent methods every generated client struct has, with what they are.
pub const CLIENT_FIXED: [(&str, &str); 2] = [("new", "constructor"), ("node", "node accessor")];

/// Names taken in one Rust scope, each with a description of its owner.
struct Scope {
    taken: Vec<(String, String)>,
}

impl Scope {
    fn new(fixed: impl Iterator<Item = (String, String)>) -> Self {
        Self {
            taken: fixed.collect(),
        }
    }

    /// Claims `name` for `owner`; returns the earlier owner if it was taken.
    fn take(&mut self, name: &str, owner: &str) -> Option<String> {
        if let Some((_, earlier)) = self.taken.iter().find(|(n, _)| n == name) {
            return Some(earlier.clone());
        }
        self.taken.push((name.to_owned(), owner.to_owned()));
        None
    }
}

/// The message ids of one module (a package's or a seed file's), declared in
/// `.proto` with `option (clustergo.cmd) = N;`: one `u16` constant per message and
/// `register_messages(node)` (see [`crate::naming::cmd_const`]).
#[derive(Debug, Clone)]
pub struct MessageIds {
    /// Path of the runtime crate, as in [`Service::runtime`].
    pub runtime: TokenStream,
    /// The messages, in declaration order (files, then nesting).
    pub messages: Vec<MessageId>,
}

/// One message with an id.
#[derive(Debug, Clone)]
pub struct MessageId {
    /// Proto name inside the package, nesting joined by `.` (`Room.Info`).
    pub name: String,
    /// The prost type, as a path valid inside the module (`room::Info`).
    pub path: TokenStream,
    /// The id: the runtime's `cmd`.
    pub cmd: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(methods: &[(&str, &str)]) -> Service {
        let mut s = Service::new("Svc", Span::call_site());
        for (name, wire) in methods {
            s.methods.push(Method {
                name: (*name).to_owned(),
                wire: (*wire).to_owned(),
                input: quote!(M),
                output: quote!(M),
                kind: MethodKind::Unary,
                docs: Vec::new(),
                span: Span::call_site(),
            });
        }
        s
    }

    /// Methods (name, wire name), extra names taken, expected clash texts.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a [&'a str]);

    #[test]
    fn clash_rules() {
        let cases: &[Case<'_>] = &[
            (&[("Get", "a"), ("Put", "b")], &[], &[]),
            (&[("Register", "a")], &[], &["generated item `register`"]),
            (&[("New", "a")], &[], &["the constructor `SvcClient::new`"]),
            (
                &[("node", "a")],
                &[],
                &["the node accessor `SvcClient::node`"],
            ),
            (
                &[("Get", "a"), ("GetWithTimeout", "b")],
                &[],
                &["`get_with_timeout`, which clashes with an item of method `Get`"],
            ),
            (
                &[("Get", "a"), ("Put", "a")],
                &[],
                &["repeats wire name \"a\""],
            ),
            (&[("on_call", "x")], &["Replyer"], &["`Replyer`"]),
        ];
        for (methods, extra, want) in cases {
            let extra: Vec<String> = extra.iter().map(|e| (*e).to_owned()).collect();
            let got: Vec<String> = service(methods)
                .clashes(&extra)
                .into_iter()
                .map(|c| c.message)
                .collect();
            assert_eq!(got.len(), want.len(), "{methods:?}: {got:?}");
            for (g, w) in got.iter().zip(*want) {
                assert!(g.contains(w), "{methods:?}: {g:?} lacks {w:?}");
            }
        }
    }
}
