//! Every name the generators make, in one place.
//!
//! Proto names follow prost's rules (heck case conversion, keywords become raw
//! identifiers, `self`/`super`/`crate`/`extern`/`Self`/`_` get a trailing underscore,
//! a leading digit gets a leading underscore), so paths we build to prost's messages
//! match what prost generated.
//!
//! # Shape of a service module
//!
//! A service called `B` or `BService` (its *base* is `B`) becomes module `b` holding
//! trait `BService`, client struct `BClient` and the free functions `register` and
//! `register_on`. Each method `m` adds the wire-name constant `M_METHOD`, the replyer
//! alias `MReplyer`, the trait method `m` and the functions `m`, `m_with_timeout`,
//! `m_with_callback` and `post_m` (also as `BClient` methods). A streaming method
//! gets only the constant, the trait method, `m` and `m_with_timeout` (the other
//! names stay reserved in the clash checks).
//!
//! A method called `on_call` is the seed's single-method convention: its items are
//! `METHOD`, `Replyer`, trait method `on_call`, and `call`, `call_with_timeout`,
//! `call_with_callback`, `post`. Its wire name is the snake-case base (`"echo"`).
//! Other methods have the wire name `package.Base.Method` (no leading dot; no
//! package → `Base.Method`), with `UpperCamel` base and method (see [`wire_name`]).
//!
//! Message ids add, beside the messages, one constant per message
//! ([`cmd_const`]: `Room.Info` → `ROOM_INFO_CMD`) and [`REGISTER_MESSAGES`].

use heck::{ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};
use proc_macro2::{Ident, Span};

/// The trait method name that selects the seed's single-method convention.
pub const SEED_METHOD: &str = "on_call";

/// Makes `s` a legal Rust identifier the way prost does: keywords become raw
/// identifiers (`r#type`), `self`, `super`, `crate`, `extern`, `Self` and `_` get a
/// trailing `_`, and a leading digit gets a leading `_`.
pub fn sanitize(s: &str) -> String {
    match s {
        "as" | "break" | "const" | "continue" | "else" | "enum" | "false" | "fn" | "for" | "if"
        | "impl" | "in" | "let" | "loop" | "match" | "mod" | "move" | "mut" | "pub" | "ref"
        | "return" | "static" | "struct" | "trait" | "true" | "type" | "unsafe" | "use"
        | "where" | "while" | "dyn" | "abstract" | "become" | "box" | "do" | "final" | "macro"
        | "override" | "priv" | "typeof" | "unsized" | "virtual" | "yield" | "async" | "await"
        | "try" | "gen" => format!("r#{s}"),
        "_" | "super" | "self" | "Self" | "extern" | "crate" => format!("{s}_"),
        s if s.starts_with(|c: char| c.is_ascii_digit()) => format!("_{s}"),
        _ => s.to_owned(),
    }
}

/// `lower_snake` identifier text (prost's `to_snake`).
pub fn to_snake(s: &str) -> String {
    sanitize(&s.to_snake_case())
}

/// `UpperCamel` identifier text (prost's `to_upper_camel`).
pub fn to_upper_camel(s: &str) -> String {
    sanitize(&s.to_upper_camel_case())
}

/// Turns identifier text (possibly `r#raw`) into an [`Ident`]. Text that is no
/// identifier at all (e.g. empty, from a proto name of only underscores) becomes
/// `__`.
pub fn ident(text: &str, span: Span) -> Ident {
    let valid = |t: &str| {
        t.starts_with(|c: char| c.is_alphabetic() || c == '_')
            && t.chars().all(|c| c.is_alphanumeric() || c == '_')
            && t != "_"
    };
    if !valid(text.trim_start_matches("r#")) {
        return Ident::new("__", span);
    }
    match text.strip_prefix("r#") {
        Some(raw) => Ident::new_raw(raw, span),
        None => Ident::new(text, span),
    }
}

/// The service name without a trailing `Service` (unless that leaves nothing).
fn base(service: &str) -> &str {
    match service.strip_suffix("Service") {
        Some(b) if !b.is_empty() && b != "_" => b.trim_end_matches('_'),
        _ => service,
    }
}

/// Names of the items generated once per service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceNames {
    /// Module name, `lower_snake` of the base.
    pub module: String,
    /// Trait name, `UpperCamel` of the base plus `Service`.
    pub service_trait: String,
    /// Client struct name, `UpperCamel` of the base plus `Client`.
    pub client: String,
}

impl ServiceNames {
    /// Names for a service called `service` (proto spelling or Rust trait name).
    pub fn new(service: &str) -> Self {
        let b = base(service);
        let camel = b.to_upper_camel_case();
        Self {
            module: to_snake(b),
            service_trait: sanitize(&format!("{camel}Service")),
            client: sanitize(&format!("{camel}Client")),
        }
    }
}

/// Names of the items generated once per method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodNames {
    /// Trait method.
    pub trait_fn: String,
    /// `&str` constant holding the wire name.
    pub method_const: String,
    /// Replyer type alias.
    pub replyer: String,
    /// Awaitable call with the node's default timeout.
    pub call: String,
    /// Awaitable call with an explicit timeout.
    pub call_with_timeout: String,
    /// Call that runs a callback with the result.
    pub call_with_callback: String,
    /// One-way call.
    pub post: String,
}

impl MethodNames {
    /// Names for a method called `method` (proto `SayHello` or Rust `say_hello`).
    pub fn new(method: &str) -> Self {
        if method == SEED_METHOD {
            return Self {
                trait_fn: SEED_METHOD.to_owned(),
                method_const: "METHOD".to_owned(),
                replyer: "Replyer".to_owned(),
                call: "call".to_owned(),
                call_with_timeout: "call_with_timeout".to_owned(),
                call_with_callback: "call_with_callback".to_owned(),
                post: "post".to_owned(),
            };
        }
        let snake = method.trim_start_matches("r#").to_snake_case();
        Self {
            trait_fn: sanitize(&snake),
            method_const: sanitize(&format!("{}_METHOD", snake.to_shouty_snake_case())),
            replyer: sanitize(&format!("{}Replyer", snake.to_upper_camel_case())),
            call: sanitize(&snake),
            call_with_timeout: sanitize(&format!("{snake}_with_timeout")),
            call_with_callback: sanitize(&format!("{snake}_with_callback")),
            post: sanitize(&format!("post_{snake}")),
        }
    }

    /// The value-namespace names (functions and constant) this method adds to the
    /// module.
    pub fn values(&self) -> [&str; 5] {
        [
            &self.method_const,
            &self.call,
            &self.call_with_timeout,
            &self.call_with_callback,
            &self.post,
        ]
    }

    /// The methods this method adds to the client struct.
    pub fn client_methods(&self) -> [&str; 4] {
        [
            &self.call,
            &self.call_with_timeout,
            &self.call_with_callback,
            &self.post,
        ]
    }
}

/// Wire name of a method: the seed method (`on_call`) of service `echo` is `"echo"`
/// (snake case of the base); any other is `"pkg.Base.Method"` (`"Base.Method"`
/// without a package), where `Base` is the `UpperCamel` service base (the service
/// name without a trailing `Service`, as in the module and trait names) and `Method`
/// the `UpperCamel` method name.
///
/// So proto `service Lobby`, proto `service LobbyService` and Rust
/// `trait LobbyService` (or `trait Lobby`) in package `game.lobby` all call method
/// `Join` as `"game.lobby.Lobby.Join"`: whatever makes the same module and trait
/// makes the same wire names.
pub fn wire_name(package: &str, service: &str, method: &str) -> String {
    let service = base(service.trim_start_matches("r#"));
    if method == SEED_METHOD {
        return service.to_snake_case();
    }
    let service = service.to_upper_camel_case();
    let method = method.trim_start_matches("r#").to_upper_camel_case();
    if package.is_empty() {
        format!("{service}.{method}")
    } else {
        format!("{package}.{service}.{method}")
    }
}

/// The function of a package (or seed) module that registers its messages'
/// ids (`option (clustergo.cmd)`) on a node.
pub const REGISTER_MESSAGES: &str = "register_messages";

/// The `u16` constant holding the id of message `message`, its proto name inside
/// the package with nesting joined by `.`: `Move` → `MOVE_CMD`, `Room.Info` →
/// `ROOM_INFO_CMD`. Always ends in `_CMD`, so it never meets a service's items.
pub fn cmd_const(message: &str) -> String {
    let parts: Vec<String> = message
        .split('.')
        .map(|p| p.trim_start_matches("r#").to_shouty_snake_case())
        .collect();
    sanitize(&format!("{}_CMD", parts.join("_")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_and_digits() {
        assert_eq!(to_snake("type"), "r#type");
        assert_eq!(to_snake("Self"), "self_");
        assert_eq!(to_upper_camel("self"), "Self_");
        assert_eq!(to_snake("crate"), "crate_");
        assert_eq!(to_snake("1st"), "_1st");
        assert_eq!(to_upper_camel("gen"), "Gen");
        assert_eq!(sanitize("gen"), "r#gen");
        assert_eq!(ident("r#type", Span::call_site()).to_string(), "r#type");
        assert_eq!(ident("self_", Span::call_site()).to_string(), "self_");
        assert_eq!(ident("", Span::call_site()).to_string(), "__");
        assert_eq!(ident("_", Span::call_site()).to_string(), "__");
    }

    #[test]
    fn abc_service() {
        let n = ServiceNames::new("ABCService");
        assert_eq!(n.module, "abc");
        assert_eq!(n.service_trait, "AbcService");
        assert_eq!(n.client, "AbcClient");
        let n = ServiceNames::new("Greeter");
        assert_eq!(
            (
                n.module.as_str(),
                n.service_trait.as_str(),
                n.client.as_str()
            ),
            ("greeter", "GreeterService", "GreeterClient")
        );
        assert_eq!(ServiceNames::new("echo").service_trait, "EchoService");
        assert_eq!(ServiceNames::new("Service").module, "service");
        assert_eq!(ServiceNames::new("type").module, "r#type");
        assert_eq!(ServiceNames::new("Self").service_trait, "SelfService");
    }

    #[test]
    fn method_names() {
        let m = MethodNames::new("SayHello");
        assert_eq!(m.trait_fn, "say_hello");
        assert_eq!(m.method_const, "SAY_HELLO_METHOD");
        assert_eq!(m.replyer, "SayHelloReplyer");
        assert_eq!(m.call_with_timeout, "say_hello_with_timeout");
        assert_eq!(m.post, "post_say_hello");
        let m = MethodNames::new("type");
        assert_eq!(m.trait_fn, "r#type");
        assert_eq!(m.call, "r#type");
        assert_eq!(m.call_with_callback, "type_with_callback");
        assert_eq!(m.replyer, "TypeReplyer");
        assert_eq!(MethodNames::new("r#match").replyer, "MatchReplyer");
        let seed = MethodNames::new("on_call");
        assert_eq!(seed.call, "call");
        assert_eq!(seed.post, "post");
        assert_eq!(seed.replyer, "Replyer");
    }

    #[test]
    fn cmd_consts() {
        for (message, want) in [
            ("Move", "MOVE_CMD"),
            ("request", "REQUEST_CMD"),
            ("Room.Info", "ROOM_INFO_CMD"),
            ("HTTPRequest", "HTTP_REQUEST_CMD"),
            ("type", "TYPE_CMD"),
            ("player_joined", "PLAYER_JOINED_CMD"),
        ] {
            assert_eq!(cmd_const(message), want, "{message}");
        }
    }

    #[test]
    fn wire_names() {
        assert_eq!(wire_name("", "echo", "on_call"), "echo");
        assert_eq!(wire_name("", "EchoService", "on_call"), "echo");
        assert_eq!(
            wire_name("game.lobby", "Lobby", "Join"),
            "game.lobby.Lobby.Join"
        );
        assert_eq!(wire_name("", "Greeter", "say_hello"), "Greeter.SayHello");
        // One rule for every front-end: the base, as in the trait and module names.
        for service in ["Lobby", "LobbyService", "lobby", "Lobby_Service"] {
            assert_eq!(
                wire_name("game.lobby", service, "Join"),
                "game.lobby.Lobby.Join",
                "{service}"
            );
        }
        assert_eq!(wire_name("", "ABCService", "ping"), "Abc.Ping");
        assert_eq!(wire_name("", "r#type", "r#match"), "Type.Match");
        assert_eq!(wire_name("", "Service", "Get"), "Service.Get");
    }
}
