//! `#[service]` expansion on `proc_macro2` tokens: parse → model → shared emitter.

use proc_macro2::{Ident, Span, TokenStream};
use protoc_gen_clustergo::emit;
use protoc_gen_clustergo::model::{HandlerForm, Method, MethodKind, Service};
use protoc_gen_clustergo::naming::{self, ServiceNames};
use quote::{ToTokens, quote, quote_spanned};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{
    Expr, ExprLit, FnArg, GenericArgument, ItemTrait, Lit, Meta, PathArguments, PathSegment,
    ReturnType, Token, TraitItem, TraitItemFn, Type,
};

/// Errors collected while parsing; all are reported, not only the first.
#[derive(Default)]
struct Errors {
    /// Every error so far, combined into one.
    all: Option<syn::Error>,
    /// How many were pushed (a method is dropped if it added any).
    count: usize,
}

impl Errors {
    fn push(&mut self, e: syn::Error) {
        self.count += 1;
        match &mut self.all {
            Some(all) => all.combine(e),
            None => self.all = Some(e),
        }
    }

    fn at(&mut self, tokens: impl ToTokens, msg: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, msg));
    }
}

#[derive(Default)]
struct Args {
    /// `codec = ..` as written (relative to the trait's module).
    codec: Option<syn::Path>,
    /// `crate = ..` as written.
    runtime: Option<syn::Path>,
    package: String,
}

fn parse_args(attr: TokenStream, errors: &mut Errors) -> Args {
    let mut args = Args::default();
    if attr.is_empty() {
        return args;
    }
    let metas =
        match syn::parse::Parser::parse2(Punctuated::<Meta, Token![,]>::parse_terminated, attr) {
            Ok(m) => m,
            Err(e) => {
                errors.push(e);
                return args;
            }
        };
    for meta in metas {
        let Meta::NameValue(nv) = &meta else {
            errors.at(
                &meta,
                "expected `codec = path`, `package = \"name\"` or `crate = path`",
            );
            continue;
        };
        if nv.path.is_ident("codec") {
            match &nv.value {
                Expr::Path(p) if p.qself.is_none() => {
                    args.codec = Some(p.path.clone());
                }
                other => errors.at(other, "`codec` takes a path to a `clustergo::Codec` type"),
            }
        } else if nv.path.is_ident("crate") {
            match &nv.value {
                Expr::Path(p) if p.qself.is_none() => {
                    args.runtime = Some(p.path.clone());
                }
                other => errors.at(other, "`crate` takes the path of the clustergo crate"),
            }
        } else if nv.path.is_ident("package") {
            match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => args.package = s.value(),
                other => errors.at(other, "`package` takes a string literal"),
            }
        } else {
            errors.at(
                &nv.path,
                "unknown argument (expected `codec`, `package` or `crate`)",
            );
        }
    }
    args
}

/// Last path segment of `ty` if it is named `name`.
fn last_segment<'a>(ty: &'a Type, name: &str) -> Option<&'a syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().filter(|s| s.ident == name),
        _ => None,
    }
}

fn parse_method(
    f: &TraitItemFn,
    trait_name: &str,
    args: &Args,
    errors: &mut Errors,
) -> Option<(Method, [Type; 2])> {
    let before = errors.count;
    let sig = &f.sig;
    let name = sig.ident.to_string();
    let plain = name.trim_start_matches("r#");
    let snake = naming::to_snake(plain);
    if snake.trim_start_matches("r#") != plain {
        errors.at(
            &sig.ident,
            format!("method names must be snake_case (expected `{snake}`)"),
        );
    }
    if let Some(c) = &sig.constness {
        errors.at(c, "const methods are not supported");
    }
    if let Some(u) = &sig.unsafety {
        errors.at(u, "unsafe methods are not supported");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.at(&sig.generics, "service methods cannot be generic");
    }
    if let Some(body) = &f.default {
        errors.at(body, "service methods cannot have a default body");
    }
    let parsed = if is_streaming(sig) {
        stream_signature(sig, errors)
    } else {
        unary_signature(sig, errors)
    };
    let mut wire = None;
    for attr in &f.attrs {
        if attr.path().is_ident("rpc") {
            let r = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("name") {
                    let s: syn::LitStr = meta.value()?.parse()?;
                    if s.value().is_empty() {
                        return Err(syn::Error::new_spanned(&s, "the wire name cannot be empty"));
                    }
                    wire = Some(s.value());
                    Ok(())
                } else {
                    Err(meta.error("unknown `rpc` argument (expected `name = \"..\"`)"))
                }
            });
            if let Err(e) = r {
                errors.push(e);
            }
        } else if !attr.path().is_ident("doc") {
            errors.at(
                attr,
                "only doc comments and `#[rpc(..)]` are allowed on service methods",
            );
        }
    }
    if errors.count > before {
        return None;
    }
    let (input, output, kind) = parsed?;
    let method = Method {
        name: plain.to_owned(),
        wire: wire.unwrap_or_else(|| naming::wire_name(&args.package, trait_name, plain)),
        input: one_deeper(input),
        output: one_deeper(output),
        kind,
        docs: docs(&f.attrs),
        span: sig.ident.span(),
    };
    Some((method, [input.clone(), output.clone()]))
}

/// Whether a method streams: an argument is a `Streaming<..>` or `StreamSender<..>`.
fn is_streaming(sig: &syn::Signature) -> bool {
    sig.inputs.iter().any(|a| match a {
        FnArg::Typed(t) => {
            last_segment(&t.ty, "Streaming").is_some()
                || last_segment(&t.ty, "StreamSender").is_some()
        }
        FnArg::Receiver(_) => false,
    })
}

/// The request and response types of a unary method (replyer or async form).
fn unary_signature<'a>(
    sig: &'a syn::Signature,
    errors: &mut Errors,
) -> Option<(&'a Type, &'a Type, MethodKind)> {
    let before = errors.count;
    let name = sig.ident.to_string();
    // `async fn m(&self, ctx, request) -> Result<Resp, RpcError>`: the async form.
    let is_async = sig.asyncness.is_some();
    let mut output = None;
    match (&sig.output, is_async) {
        (ReturnType::Type(_, ty), false) => errors.at(
            ty,
            "service methods return nothing: answer through the `replyer` argument",
        ),
        (ReturnType::Type(_, ty), true) => match result_ok_type(ty) {
            Some(t) => output = Some(t),
            None => errors.at(
                ty,
                "async service methods return `Result<Response, RpcError>`",
            ),
        },
        (ReturnType::Default, true) => errors.at(
            &sig.ident,
            "async service methods return `Result<Response, RpcError>`",
        ),
        (ReturnType::Default, false) => {}
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r))
            if r.reference.is_some() && r.mutability.is_none() && r.colon_token.is_none() => {}
        Some(other) => {
            errors.at(other, "the first argument must be `&self`");
            return None;
        }
        None => errors.at(
            &sig.ident,
            "missing `&self, ctx: RpcContext, replyer: Replyer<Response>, request: Request`",
        ),
    }
    let rest: Vec<&syn::PatType> = inputs
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect();
    if is_async {
        if rest.len() != 2 {
            errors.at(
                &sig.inputs,
                "expected arguments `&self, ctx: RpcContext, request: Request`",
            );
            return None;
        }
    } else if rest.len() != 3 {
        if sig.inputs.len() > 1 {
            errors.at(&sig.inputs,
                "expected arguments `&self, ctx: RpcContext, replyer: Replyer<Response>, request: Request`",
            );
        } else if sig.inputs.len() == 1 {
            errors.at(
                &sig.ident,
                format!(
                    "method `{name}` takes no request: expected `&self, ctx: RpcContext, \
                     replyer: Replyer<Response>, request: Request`"
                ),
            );
        }
        return None;
    }
    if last_segment(&rest[0].ty, "RpcContext").is_none_or(|s| !s.arguments.is_none()) {
        errors.at(&rest[0].ty, "the second argument must be `ctx: RpcContext`");
    }
    match last_segment(&rest[1].ty, "Replyer").map(|s| &s.arguments) {
        _ if is_async => {}
        Some(PathArguments::AngleBracketed(_)) => {
            output = one_type_argument(&rest[1].ty, "Replyer", "Response", errors);
        }
        _ => errors.at(
            &rest[1].ty,
            "the third argument must be `replyer: Replyer<Response>`",
        ),
    }
    let input = &rest[rest.len() - 1].ty;
    match &**input {
        Type::Reference(_) | Type::ImplTrait(_) | Type::Infer(_) | Type::Never(_) => errors.at(
            input,
            "the request must be an owned type (e.g. `request: Request`)",
        ),
        _ => {}
    }
    if errors.count > before {
        return None;
    }
    Some((&**input, output?, MethodKind::Unary))
}

/// `T` of `Name<T>` (the only argument), with an error at the type otherwise that
/// names the expected argument `arg`.
fn one_type_argument<'a>(
    ty: &'a Type,
    name: &str,
    arg: &str,
    errors: &mut Errors,
) -> Option<&'a Type> {
    let seg = last_segment(ty, name)?;
    match &seg.arguments {
        PathArguments::AngleBracketed(a) => match a.args.iter().collect::<Vec<_>>().as_slice() {
            [GenericArgument::Type(t)] => Some(t),
            [_, extra, ..] => {
                errors.at(
                    extra,
                    format!(
                        "give the codec as `#[service(codec = ..)]`, not as a `{name}` argument"
                    ),
                );
                None
            }
            _ => {
                errors.at(a, format!("expected `{name}<{arg}>`"));
                None
            }
        },
        _ => {
            errors.at(ty, format!("expected `{name}<{arg}>`"));
            None
        }
    }
}

/// The request and response types and the kind of a streaming method:
/// `async fn m(&self, ctx: RpcContext, request: Req, responses: StreamSender<Resp>)
/// -> Result<(), RpcError>` (server-streaming), `(.., requests: Streaming<Req>) ->
/// Result<Resp, RpcError>` (client-streaming), or `(.., requests: Streaming<Req>,
/// responses: StreamSender<Resp>) -> Result<(), RpcError>` (bidirectional).
fn stream_signature<'a>(
    sig: &'a syn::Signature,
    errors: &mut Errors,
) -> Option<(&'a Type, &'a Type, MethodKind)> {
    const SHAPES: &str = "expected `&self, ctx: RpcContext, request: Request, responses: \
         StreamSender<Response>`, `&self, ctx: RpcContext, requests: Streaming<Request>` or \
         `&self, ctx: RpcContext, requests: Streaming<Request>, responses: \
         StreamSender<Response>`";
    let before = errors.count;
    if sig.asyncness.is_none() {
        errors.at(&sig.ident, "streaming methods are `async fn`");
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r))
            if r.reference.is_some() && r.mutability.is_none() && r.colon_token.is_none() => {}
        other => {
            errors.at(
                other.map_or_else(|| sig.ident.to_token_stream(), |o| o.to_token_stream()),
                "the first argument must be `&self`",
            );
            return None;
        }
    }
    let rest: Vec<&Type> = inputs
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(&*t.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
    if rest
        .first()
        .is_none_or(|t| last_segment(t, "RpcContext").is_none())
    {
        errors.at(&sig.inputs, "the second argument must be `ctx: RpcContext`");
        return None;
    }
    let returned = match &sig.output {
        ReturnType::Type(_, ty) => result_ok_type(ty),
        ReturnType::Default => None,
    };
    let is_unit = |t: &Type| matches!(t, Type::Tuple(t) if t.elems.is_empty());
    let (input, output, kind) = match &rest[1..] {
        [req, resp] if last_segment(resp, "StreamSender").is_some() => {
            let output = one_type_argument(resp, "StreamSender", "Message", errors)?;
            match last_segment(req, "Streaming") {
                Some(_) => (
                    one_type_argument(req, "Streaming", "Message", errors)?,
                    output,
                    MethodKind::Bidi,
                ),
                None => (*req, output, MethodKind::ServerStreaming),
            }
        }
        [req] if last_segment(req, "Streaming").is_some() => {
            let input = one_type_argument(req, "Streaming", "Message", errors)?;
            match returned {
                Some(t) if !is_unit(t) => (input, t, MethodKind::ClientStreaming),
                _ => {
                    errors.at(
                        &sig.output,
                        "a client-streaming method returns `Result<Response, RpcError>`",
                    );
                    return None;
                }
            }
        }
        _ => {
            errors.at(&sig.inputs, SHAPES);
            return None;
        }
    };
    if kind.server_streams() && !returned.is_some_and(is_unit) {
        errors.at(
            &sig.output,
            "a method streaming responses returns `Result<(), RpcError>`",
        );
    }
    match input {
        Type::Reference(_) | Type::ImplTrait(_) | Type::Infer(_) | Type::Never(_) => {
            errors.at(input, "the request must be an owned type")
        }
        _ => {}
    }
    (errors.count == before).then_some((input, output, kind))
}

/// `T` of a return type `Result<T, _>` (the async form's response).
fn result_ok_type(ty: &Type) -> Option<&Type> {
    match &last_segment(ty, "Result")?.arguments {
        PathArguments::AngleBracketed(a) if a.args.len() == 2 => match &a.args[0] {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        },
        _ => None,
    }
}

/// Functions (for a `const _` beside the trait) that check that every request and response type is a message
/// of the codec, with the type's span: the first error then points at the type
/// in the method (rustc also reports the uses inside the generated module).
fn message_checks(args: &Args, types: &[[Type; 2]]) -> TokenStream {
    let rt = match &args.runtime {
        Some(rt) => rt.to_token_stream(),
        None => quote!(::clustergo),
    };
    let codec = match &args.codec {
        Some(c) => c.to_token_stream(),
        None => quote!(#rt::codegen::ProstCodec),
    };
    let checks = types.iter().flatten().map(|ty| {
        let codec = respan(codec.clone(), ty.span());
        quote_spanned!(ty.span()=> is_message::<#ty, #codec>();)
    });
    quote! {
        // (No `#[diagnostic::on_unimplemented]`: it does not resolve under
        // `#![no_implicit_prelude]`.)
        trait MessageOf<C> {}
        impl<T, C: #rt::codegen::Codec<T>> MessageOf<C> for T {}
        fn is_message<T: MessageOf<C>, C>() {}
        fn _check() {
            #(#checks)*
        }
    }
}

/// `tokens` with every span set to `span` (so an error about them points there).
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut t| {
            if let proc_macro2::TokenTree::Group(g) = &t {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                t = proc_macro2::TokenTree::Group(group);
            }
            t.set_span(span);
            t
        })
        .collect()
}

/// Items are emitted inside `mod <service> { use super::*; .. }`, one module deeper
/// than the trait, so paths written relative to the trait's module get one more
/// `super`: `self::pb::Ping` → `super::pb::Ping`, `super::X` → `super::super::X`.
/// Other paths resolve the same through `use super::*;` or are absolute.
struct OneDeeper;

impl VisitMut for OneDeeper {
    fn visit_path_mut(&mut self, path: &mut syn::Path) {
        let first = match path.segments.first_mut() {
            Some(first) if path.leading_colon.is_none() => first,
            _ => return visit_mut::visit_path_mut(self, path),
        };
        let span = first.ident.span();
        if first.ident == "self" {
            first.ident = Ident::new("super", span);
        } else if first.ident == "super" {
            path.segments
                .insert(0, PathSegment::from(Ident::new("super", span)));
        }
        visit_mut::visit_path_mut(self, path);
    }
}

/// `ty` as seen from the generated module (see [`OneDeeper`]).
fn one_deeper(ty: &Type) -> TokenStream {
    let mut ty = ty.clone();
    OneDeeper.visit_type_mut(&mut ty);
    ty.into_token_stream()
}

/// Path argument `path` as seen from the generated module (see [`OneDeeper`]).
fn path_one_deeper(path: &syn::Path) -> TokenStream {
    let mut path = path.clone();
    OneDeeper.visit_path_mut(&mut path);
    path.into_token_stream()
}

fn docs(attrs: &[syn::Attribute]) -> Vec<String> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The original item, minus our inert `#[rpc]` attributes, for error output.
fn original(mut item: ItemTrait) -> TokenStream {
    for it in &mut item.items {
        if let TraitItem::Fn(f) = it {
            f.attrs.retain(|a| !a.path().is_ident("rpc"));
        }
    }
    item.into_token_stream()
}

/// Expands `#[service(attr)] item`.
pub(crate) fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = parse_args(attr, &mut errors);
    let item: ItemTrait = match syn::parse2(item.clone()) {
        Ok(t) => t,
        Err(_) => {
            let e = syn::Error::new_spanned(&item, "#[clustergo::service] goes on a trait");
            errors.push(e);
            let all = errors.all.map(|e| e.to_compile_error());
            return quote!(#item #all);
        }
    };
    let trait_name = item.ident.to_string();
    let trait_name = trait_name.trim_start_matches("r#");
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.at(&item.generics, "service traits cannot be generic");
    }
    if let Some(u) = &item.unsafety {
        errors.at(u, "service traits cannot be unsafe");
    }
    if let Some(a) = &item.auto_token {
        errors.at(a, "service traits cannot be auto traits");
    }
    if !item.supertraits.is_empty() {
        errors.at(
            &item.supertraits,
            "service traits take no supertraits (`Send + Sync + 'static` is added)",
        );
    }
    for attr in &item.attrs {
        if !attr.path().is_ident("doc") {
            errors.at(attr, "only doc comments are allowed on a service trait");
        }
    }
    let mut svc = Service::new(trait_name, item.ident.span());
    svc.codec = args.codec.as_ref().map(path_one_deeper);
    if let Some(rt) = &args.runtime {
        svc.runtime = path_one_deeper(rt);
    }
    svc.docs = docs(&item.attrs);
    // The first unary method's form is the service's; the other unary methods
    // must agree (streaming methods always take the async shape).
    let first_async = item.items.iter().find_map(|it| match it {
        TraitItem::Fn(f) if !is_streaming(&f.sig) => Some(f.sig.asyncness.is_some()),
        _ => None,
    });
    if first_async == Some(true) {
        svc.handler = HandlerForm::Async;
    }
    for it in &item.items {
        if let TraitItem::Fn(f) = it
            && !is_streaming(&f.sig)
            && Some(f.sig.asyncness.is_some()) != first_async
        {
            errors.at(
                &f.sig.ident,
                "all methods of a service use one form: all `async fn` or all with a `replyer`",
            );
        }
    }
    let mut fns: Vec<&TraitItemFn> = Vec::new();
    let mut types: Vec<[Type; 2]> = Vec::new();
    for it in &item.items {
        match it {
            TraitItem::Fn(f) => {
                if let Some((m, written)) = parse_method(f, trait_name, &args, &mut errors) {
                    svc.methods.push(m);
                    types.push(written);
                    fns.push(f);
                }
            }
            other => errors.at(other, "service traits may only contain methods"),
        }
    }
    if item.items.is_empty() {
        errors.at(&item.ident, "a service needs at least one method");
    }
    for clash in svc.clashes(&[]) {
        errors.at(&fns[clash.method].sig.ident, clash.message);
    }
    if let Some(e) = errors.all {
        let original = original(item);
        let e = e.to_compile_error();
        return quote!(#original #e);
    }
    let names = ServiceNames::new(trait_name);
    let vis = item.vis.to_token_stream();
    let module = emit::module(
        &svc,
        &vis,
        quote!(
            use super::*;
        ),
    );
    let module_id = naming::ident(&names.module, Span::call_site());
    let trait_id = naming::ident(&names.service_trait, item.ident.span());
    let user = &item.ident;
    let alias = if *user == trait_id {
        quote!()
    } else {
        quote!(as #user)
    };
    // The argument types as the user wrote them are replaced by the generated ones;
    // mention them once so their imports count as used.
    let written = fns.iter().map(|f| {
        let tys = f.sig.inputs.iter().filter_map(|a| match a {
            FnArg::Typed(t) if !matches!(&*t.ty, Type::Reference(_)) => Some(&t.ty),
            _ => None,
        });
        quote!(fn _written(#(_: #tys),*) {})
    });
    let checks = message_checks(&args, &types);
    quote! {
        const _: () = {
            #checks
            #({ #written })*
        };
        #module
        #[allow(unused_imports)]
        #vis use #module_id::#trait_id #alias;
    }
}

#[cfg(test)]
mod tests;
