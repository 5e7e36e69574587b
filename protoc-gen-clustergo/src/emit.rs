//! The one emitter: model → tokens. One function per generated item.
//!
//! Generated code names the runtime only as `#rt::…` and the
//! standard library only as `::core::…`/`::std::…`, so it compiles under
//! `#![no_implicit_prelude]` and beside any user names.

use proc_macro2::{Span, TokenStream};
use quote::quote;

use crate::model::{HandlerForm, MessageId, MessageIds, Method, MethodKind, Service};
use crate::naming::{self, MethodNames, ServiceNames, ident};

/// Lints that generated modules switch off so user crates are not spammed.
pub(crate) fn allow_attrs() -> TokenStream {
    quote! {
        #[allow(
            unreachable_pub,
            unused_imports,
            unused_variables,
            dead_code,
            clippy::all,
            clippy::pedantic,
            clippy::nursery
        )]
    }
}

fn docs(lines: &[String]) -> TokenStream {
    let lines = lines.iter().map(|l| {
        let l = if l.starts_with(' ') || l.is_empty() {
            l.clone()
        } else {
            format!(" {l}")
        };
        quote!(#[doc = #l])
    });
    quote!(#(#lines)*)
}

fn id(text: &str) -> proc_macro2::Ident {
    ident(text, Span::call_site())
}

/// The service-wide inputs of every item.
struct Ctx<'a> {
    svc: &'a Service,
    names: ServiceNames,
    codec: TokenStream,
    rt: TokenStream,
}

/// One method with its generated names.
struct MethodCx<'a> {
    method: &'a Method,
    names: MethodNames,
}

impl MethodCx<'_> {
    fn ids(&self) -> MethodIds {
        MethodIds {
            trait_fn: ident(&self.names.trait_fn, self.method.span),
            method_const: id(&self.names.method_const),
            replyer: id(&self.names.replyer),
            call: id(&self.names.call),
            call_with_timeout: id(&self.names.call_with_timeout),
            call_with_callback: id(&self.names.call_with_callback),
            post: id(&self.names.post),
        }
    }
}

struct MethodIds {
    trait_fn: proc_macro2::Ident,
    method_const: proc_macro2::Ident,
    replyer: proc_macro2::Ident,
    call: proc_macro2::Ident,
    call_with_timeout: proc_macro2::Ident,
    call_with_callback: proc_macro2::Ident,
    post: proc_macro2::Ident,
}

/// The items of a service module, without the `mod` around them (the seed
/// convention puts them beside prost's messages).
pub fn items(svc: &Service) -> TokenStream {
    let cx = Ctx {
        svc,
        names: svc.names(),
        codec: svc.codec(),
        rt: svc.runtime_door(),
    };
    let methods: Vec<MethodCx<'_>> = svc
        .methods
        .iter()
        .map(|method| MethodCx {
            method,
            names: MethodNames::new(&method.name),
        })
        .collect();
    let consts = methods.iter().map(|m| {
        let c = gen_const(m);
        // The replyer aliases belong to the replyer form's unary methods only.
        let r = match (svc.handler, m.method.kind) {
            (HandlerForm::Replyer, MethodKind::Unary) => gen_replyer(&cx, m),
            _ => TokenStream::new(),
        };
        quote!(#c #r)
    });
    let service_trait = gen_trait(&cx, &methods);
    let register = gen_register(&cx, &methods);
    let calls = methods.iter().map(|m| gen_free_fns(&cx, m));
    let client = gen_client(&cx, &methods);
    quote! {
        #(#consts)*
        #service_trait
        #register
        #(#calls)*
        #client
    }
}

/// `pub mod <module> { <items> }` with the lint allowances; `prefix` goes first
/// inside the module (e.g. `use super::*;` from the macro).
pub fn module(svc: &Service, vis: &TokenStream, prefix: TokenStream) -> TokenStream {
    let names = svc.names();
    // The service's span: a module clashing with a user item points at the trait.
    let module = ident(&names.module, svc.span);
    let items = items(svc);
    let allow = allow_attrs();
    let doc = format!(
        " Service `{}`: trait `{}`, client `{}`, `register`, and per-method calls.",
        svc.name, names.service_trait, names.client
    );
    quote! {
        #[doc = #doc]
        #allow
        #vis mod #module {
            #prefix
            #items
        }
    }
}

fn gen_const(m: &MethodCx<'_>) -> TokenStream {
    let ids = m.ids();
    let c = ids.method_const;
    let wire = &m.method.wire;
    let doc = format!(" Wire name of method `{}`.", m.method.name);
    quote! {
        #[doc = #doc]
        pub const #c: &str = #wire;
    }
}

fn gen_replyer(cx: &Ctx<'_>, m: &MethodCx<'_>) -> TokenStream {
    let rt = &cx.rt;
    let ids = m.ids();
    let r = ids.replyer;
    let out = &m.method.output;
    let codec = &cx.codec;
    let doc = format!(
        " Answers one `{}` call: `reply(response)`, `error(message)`, `peer()`. \
         Dropping it unanswered sends an error to the caller.",
        m.method.wire
    );
    quote! {
        #[doc = #doc]
        pub type #r = #rt::Replyer<#out, #codec>;
    }
}

fn gen_trait(cx: &Ctx<'_>, methods: &[MethodCx<'_>]) -> TokenStream {
    let rt = &cx.rt;
    let t = id(&cx.names.service_trait);
    let doc = if cx.svc.docs.is_empty() {
        docs(&[format!(
            "Server side of `{}`: implement it and pass it to `register`.",
            cx.svc.name
        )])
    } else {
        docs(&cx.svc.docs)
    };
    let fns = methods.iter().map(|m| {
        let ids = m.ids();
        let f = ids.trait_fn;
        // The method's span, so a mismatching impl points at the declaration.
        let r = ident(&m.names.replyer, m.method.span);
        let input = &m.method.input;
        let output = &m.method.output;
        let how = match cx.svc.handler {
            HandlerForm::Replyer => "answer through `replyer`, now or later from any task",
            HandlerForm::Async => {
                "the future is dropped when the caller's deadline passes or its link is lost"
            }
        };
        if m.method.kind != MethodKind::Unary {
            return gen_stream_trait_fn(cx, m);
        }
        let doc = if m.method.docs.is_empty() {
            docs(&[format!("Handles one `{}` request; {how}.", m.method.wire)])
        } else {
            docs(&m.method.docs)
        };
        match cx.svc.handler {
            HandlerForm::Replyer => quote! {
                #doc
                fn #f(&self, ctx: #rt::RpcContext, replyer: #r, request: #input);
            },
            // Not `async fn`: the future must be `Send` for the server to spawn it.
            // Implementors may still write `async fn`.
            HandlerForm::Async => quote! {
                #doc
                fn #f(&self, ctx: #rt::RpcContext, request: #input)
                    -> impl ::core::future::Future<
                        Output = ::core::result::Result<#output, #rt::RpcError>,
                    > + ::core::marker::Send;
            },
        }
    });
    quote! {
        #doc
        pub trait #t: ::core::marker::Send + ::core::marker::Sync + 'static {
            #(#fns)*
        }
    }
}

fn gen_register(cx: &Ctx<'_>, methods: &[MethodCx<'_>]) -> TokenStream {
    let rt = &cx.rt;
    let t = id(&cx.names.service_trait);
    let codec = &cx.codec;
    let regs = methods.iter().map(|m| {
        let ids = m.ids();
        let (c, f) = (ids.method_const, ids.trait_fn);
        let (input, output) = (&m.method.input, &m.method.output);
        if m.method.kind != MethodKind::Unary {
            return gen_stream_register(cx, m);
        }
        match cx.svc.handler {
            HandlerForm::Replyer => quote! {
                {
                    let svc = ::core::clone::Clone::clone(&svc);
                    #rt::register::<#codec, #input, #output, _>(
                        node,
                        #c,
                        move |ctx, replyer, request| #t::#f(&*svc, ctx, replyer, request),
                    );
                }
            },
            HandlerForm::Async => quote! {
                {
                    let svc = ::core::clone::Clone::clone(&svc);
                    #rt::register_async::<#codec, #input, #output, _, _>(
                        node,
                        #c,
                        move |ctx, request| {
                            let svc = ::core::clone::Clone::clone(&svc);
                            async move { #t::#f(&*svc, ctx, request).await }
                        },
                    );
                }
            },
        }
    });
    let doc_on = format!(" Registers every method of `{t}` on `node`.");
    quote! {
        /// Registers every method of the service on the process-wide default node.
        pub fn register<S: #t>(svc: S) {
            register_on(#rt::default_node(), svc)
        }

        #[doc = #doc_on]
        pub fn register_on<S: #t>(node: &#rt::Node, svc: S) {
            let svc = ::std::sync::Arc::new(svc);
            #(#regs)*
        }
    }
}

/// The four calls of one method; `node` is the expression for `&Node` and
/// `receiver` the leading `&self,` of client methods (or nothing).
fn gen_calls(
    cx: &Ctx<'_>,
    m: &MethodCx<'_>,
    node: &TokenStream,
    receiver: &TokenStream,
    on: &str,
) -> TokenStream {
    if m.method.kind != MethodKind::Unary {
        return gen_stream_calls(cx, m, node, receiver, on);
    }
    let rt = &cx.rt;
    let ids = m.ids();
    let codec = &cx.codec;
    let (input, output) = (&m.method.input, &m.method.output);
    let (c, call, timeout, callback, post) = (
        ids.method_const,
        ids.call,
        ids.call_with_timeout,
        ids.call_with_callback,
        ids.post,
    );
    let result = quote!(::core::result::Result<#output, #rt::RpcError>);
    let d_call = format!(
        " Calls `{}` on `peer` {on} and waits for the response (the node's call timeout applies).",
        m.method.wire
    );
    let d_timeout = format!(
        " Calls `{}` on `peer` {on}; gives up with a timeout error after `timeout`.",
        m.method.wire
    );
    let d_callback = format!(
        " Calls `{}` on `peer` {on}; `callback` runs once with the result (reply, error, \
         timeout at `deadline`, or disconnect) unless the returned handle cancels it.",
        m.method.wire
    );
    let d_post = format!(
        " Sends `{}` to `peer` {on} without waiting for (or getting) a response.",
        m.method.wire
    );
    quote! {
        #[doc = #d_call]
        pub async fn #call(#receiver peer: #rt::LogicAddr, request: &#input) -> #result {
            #rt::call::<#codec, #input, #output>(
                #node, peer, #c, request, ::core::option::Option::None,
            ).await
        }

        #[doc = #d_timeout]
        pub async fn #timeout(
            #receiver
            peer: #rt::LogicAddr,
            request: &#input,
            timeout: #rt::Duration,
        ) -> #result {
            #rt::call::<#codec, #input, #output>(
                #node, peer, #c, request, ::core::option::Option::Some(timeout),
            ).await
        }

        #[doc = #d_callback]
        pub fn #callback<F>(
            #receiver
            peer: #rt::LogicAddr,
            deadline: #rt::Instant,
            request: &#input,
            callback: F,
        ) -> #rt::CallHandle
        where
            F: ::core::ops::FnOnce(#result) + ::core::marker::Send + 'static,
        {
            #rt::call_with_callback::<#codec, #input, #output, F>(
                #node, peer, #c, request, deadline, callback,
            )
        }

        #[doc = #d_post]
        pub fn #post(
            #receiver
            peer: #rt::LogicAddr,
            request: &#input,
        ) -> ::core::result::Result<(), #rt::RpcError> {
            #rt::post::<#codec, #input>(#node, peer, #c, request)
        }
    }
}

/// The trait method of a streaming method: always the async shape, with the
/// runtime's `Streaming` (requests) and `StreamSender` (responses).
fn gen_stream_trait_fn(cx: &Ctx<'_>, m: &MethodCx<'_>) -> TokenStream {
    let rt = &cx.rt;
    let codec = &cx.codec;
    let f = m.ids().trait_fn;
    let (input, output) = (&m.method.input, &m.method.output);
    let doc = if m.method.docs.is_empty() {
        let what = match m.method.kind {
            MethodKind::ServerStreaming => "sends its responses through `responses`",
            MethodKind::ClientStreaming => "reads the `requests` and answers once",
            _ => "reads the `requests` and sends through `responses`",
        };
        docs(&[format!(
            "Serves one `{}` streaming call: {what}. An `Err` ends the call with \
             that error; the future is dropped when the caller cancels, its deadline \
             passes or its node is lost.",
            m.method.wire
        )])
    } else {
        docs(&m.method.docs)
    };
    let requests = quote!(requests: #rt::Streaming<#input, #codec>);
    let responses = quote!(responses: #rt::StreamSender<#output, #codec>);
    let (args, ok) = match m.method.kind {
        MethodKind::ServerStreaming => (quote!(request: #input, #responses), quote!(())),
        MethodKind::ClientStreaming => (requests, quote!(#output)),
        _ => (quote!(#requests, #responses), quote!(())),
    };
    quote! {
        #doc
        fn #f(&self, ctx: #rt::RpcContext, #args)
            -> impl ::core::future::Future<
                Output = ::core::result::Result<#ok, #rt::RpcError>,
            > + ::core::marker::Send;
    }
}

/// Registration of a streaming method.
fn gen_stream_register(cx: &Ctx<'_>, m: &MethodCx<'_>) -> TokenStream {
    let rt = &cx.rt;
    let codec = &cx.codec;
    let t = id(&cx.names.service_trait);
    let ids = m.ids();
    let (c, f) = (ids.method_const, ids.trait_fn);
    let (input, output) = (&m.method.input, &m.method.output);
    let (register, args) = match m.method.kind {
        MethodKind::ServerStreaming => (quote!(register_server_stream), quote!(request, responses)),
        MethodKind::ClientStreaming => (quote!(register_client_stream), quote!(requests)),
        _ => (quote!(register_bidi), quote!(requests, responses)),
    };
    quote! {
        {
            let svc = ::core::clone::Clone::clone(&svc);
            #rt::#register::<#codec, #input, #output, _, _>(
                node,
                #c,
                move |ctx, #args| {
                    let svc = ::core::clone::Clone::clone(&svc);
                    async move { #t::#f(&*svc, ctx, #args).await }
                },
            );
        }
    }
}

/// The two calls of a streaming method: without a deadline, and with one.
fn gen_stream_calls(
    cx: &Ctx<'_>,
    m: &MethodCx<'_>,
    node: &TokenStream,
    receiver: &TokenStream,
    on: &str,
) -> TokenStream {
    let rt = &cx.rt;
    let codec = &cx.codec;
    let ids = m.ids();
    let (c, call, timeout) = (ids.method_const, ids.call, ids.call_with_timeout);
    let (input, output) = (&m.method.input, &m.method.output);
    let wire = &m.method.wire;
    let (request, pass, ret, open, what) = match m.method.kind {
        MethodKind::ServerStreaming => (
            quote!(request: #input,),
            quote!(request,),
            quote!(#rt::Streaming<#output, #codec>),
            quote!(call_server_stream),
            "sends `request` and returns the stream of responses",
        ),
        MethodKind::ClientStreaming => (
            quote!(),
            quote!(),
            quote!((#rt::StreamSender<#input, #codec>, #rt::StreamResponse<#output, #codec>)),
            quote!(call_client_stream),
            "returns the sender of requests (drop it to end them) and the response future",
        ),
        _ => (
            quote!(),
            quote!(),
            quote!((#rt::StreamSender<#input, #codec>, #rt::Streaming<#output, #codec>)),
            quote!(call_bidi),
            "returns the sender of requests (drop it to end them) and the stream of responses",
        ),
    };
    let result = quote!(::core::result::Result<#ret, #rt::RpcError>);
    let d_call = format!(
        " Opens a `{wire}` streaming call to `peer` {on}; {what}. No deadline; \
         dropping the responses cancels the call."
    );
    let d_timeout = format!(" As `{call}`, ending the call with a timeout error after `timeout`.");
    quote! {
        #[doc = #d_call]
        pub async fn #call(#receiver peer: #rt::LogicAddr, #request) -> #result {
            #rt::#open::<#codec, #input, #output>(
                #node, peer, #c, #pass ::core::option::Option::None,
            ).await
        }

        #[doc = #d_timeout]
        pub async fn #timeout(
            #receiver
            peer: #rt::LogicAddr,
            #request
            timeout: #rt::Duration,
        ) -> #result {
            #rt::#open::<#codec, #input, #output>(
                #node, peer, #c, #pass ::core::option::Option::Some(timeout),
            ).await
        }
    }
}

fn gen_free_fns(cx: &Ctx<'_>, m: &MethodCx<'_>) -> TokenStream {
    let rt = &cx.rt;
    gen_calls(
        cx,
        m,
        &quote!(#rt::default_node()),
        &TokenStream::new(),
        "from the default node",
    )
}

fn gen_client(cx: &Ctx<'_>, methods: &[MethodCx<'_>]) -> TokenStream {
    let rt = &cx.rt;
    let client = id(&cx.names.client);
    let name = client.to_string();
    let calls = methods.iter().map(|m| {
        gen_calls(
            cx,
            m,
            &quote!(&self.node),
            &quote!(&self,),
            "from this client's node",
        )
    });
    let doc = format!(
        " Calls `{}` from a chosen node (the free functions use the default node).",
        cx.svc.name
    );
    quote! {
        #[doc = #doc]
        #[derive(::core::clone::Clone)]
        pub struct #client {
            node: #rt::Node,
        }

        impl ::core::fmt::Debug for #client {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#name).finish_non_exhaustive()
            }
        }

        impl #client {
            /// A client that sends from `node`.
            pub fn new(node: &#rt::Node) -> Self {
                Self { node: ::core::clone::Clone::clone(node) }
            }

            /// The node this client sends from.
            pub fn node(&self) -> &#rt::Node {
                &self.node
            }

            #(#calls)*
        }
    }
}

/// The message-id items of a module: one constant per message and
/// `register_messages`.
pub fn message_ids(ids: &MessageIds) -> TokenStream {
    let consts = ids.messages.iter().map(gen_cmd_const);
    let register = gen_register_messages(ids);
    quote! {
        #(#consts)*
        #register
    }
}

fn gen_cmd_const(m: &MessageId) -> TokenStream {
    let c = id(&naming::cmd_const(&m.name));
    let cmd = proc_macro2::Literal::u16_unsuffixed(m.cmd);
    let doc = format!(
        " Id (`cmd`) of message `{}`, from its `option (clustergo.cmd)`.",
        m.name
    );
    quote! {
        #[doc = #doc]
        pub const #c: u16 = #cmd;
    }
}

fn gen_register_messages(ids: &MessageIds) -> TokenStream {
    let rt = &ids.runtime;
    let f = id(naming::REGISTER_MESSAGES);
    let regs = ids.messages.iter().map(|m| {
        let c = id(&naming::cmd_const(&m.name));
        let path = &m.path;
        quote!(#rt::codegen::Node::register_pb_message::<#path>(node, #c);)
    });
    let names: Vec<String> = ids
        .messages
        .iter()
        .map(|m| format!("`{}` as `{}`", m.name, naming::cmd_const(&m.name)))
        .collect();
    let doc = format!(
        " Registers the messages that declare an id ({}) on `node`, so that \
         `Node::send_pb` sends them. A node that only receives them needs \
         `Node::register_pb_handler(<id>, ..)` instead.",
        names.join(", ")
    );
    quote! {
        #[doc = #doc]
        pub fn #f(node: &#rt::codegen::Node) {
            #(#regs)*
        }
    }
}

/// Formats generated items as a file (prettyplease), with an `@generated` header.
#[cfg(feature = "protoc")]
pub fn format_file(header: &str, tokens: TokenStream) -> String {
    let file: syn::File = match syn::parse2(tokens.clone()) {
        Ok(f) => f,
        // Never expected: the emitter only makes items. Keep the raw tokens visible.
        Err(e) => return format!("{header}compile_error!(\"{e}\");\n{tokens}\n"),
    };
    format!("{header}{}", prettyplease::unparse(&file))
}

/// The body of a seed module: prost's messages (`<module>/_.rs`), the message-id
/// items if any, and the service items, formatted.
#[cfg(feature = "protoc")]
pub fn seed_file(header: &str, module: &str, svc: &Service, ids: Option<&MessageIds>) -> String {
    let messages = format!("{module}/_.rs");
    let ids = ids.map(message_ids);
    let items = items(svc);
    format_file(header, quote!(include!(#messages); #ids #items))
}
