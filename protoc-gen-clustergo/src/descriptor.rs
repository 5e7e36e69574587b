//! Lowering protobuf descriptors (from protoc or protox) into the [`Service`] model.

use std::collections::{BTreeMap, HashMap};

use proc_macro2::{Span, TokenStream};
use prost_types::{DescriptorProto, FileDescriptorProto};

use crate::model::{HandlerForm, MessageId, MessageIds, Method, MethodKind, Service};
use crate::naming::{self, ServiceNames, to_snake, to_upper_camel, wire_name};
use crate::options::{self, Cmds, Declared};

/// Where a message type lives: Rust module path (from the generated tree's root) and
/// type name, or an absolute path for well-known types.
#[derive(Debug, Clone)]
enum TypeLoc {
    Local { module: Vec<String>, name: String },
    Absolute(String),
}

/// Every message of every file in a request, by fully qualified proto name.
#[derive(Debug, Default)]
pub(crate) struct TypeIndex {
    types: HashMap<String, TypeLoc>,
}

impl TypeIndex {
    pub(crate) fn new<'a>(files: impl IntoIterator<Item = &'a FileDescriptorProto>) -> Self {
        let mut index = Self::default();
        for file in files {
            let module = file_module(file);
            let prefix = fq_prefix(file.package());
            for msg in &file.message_type {
                index.add_message(&prefix, &module, msg);
            }
        }
        index
    }

    fn add_message(&mut self, prefix: &str, module: &[String], msg: &DescriptorProto) {
        let fq = format!("{prefix}.{}", msg.name());
        let loc = if let Some(wkt) = fq.strip_prefix(".google.protobuf.") {
            TypeLoc::Absolute(well_known(wkt))
        } else {
            TypeLoc::Local {
                module: module.to_vec(),
                name: to_upper_camel(msg.name()),
            }
        };
        self.types.insert(fq.clone(), loc);
        let mut inner = module.to_vec();
        inner.push(to_snake(msg.name()));
        for nested in &msg.nested_type {
            self.add_message(&fq, &inner, nested);
        }
    }

    /// Rust path of proto type `fq` as seen from module `from`.
    fn path(&self, fq: &str, from: &[String]) -> Option<TokenStream> {
        let text = match self.types.get(fq)? {
            TypeLoc::Absolute(p) => p.clone(),
            TypeLoc::Local { module, name } => {
                let common = from.iter().zip(module).take_while(|(a, b)| a == b).count();
                let mut parts: Vec<String> = vec!["super".to_owned(); from.len() - common];
                parts.extend(module[common..].iter().cloned());
                parts.push(name.clone());
                parts.join("::")
            }
        };
        text.parse().ok()
    }
}

/// What fully qualified names of package `package` start with: `.a.b`, or
/// nothing without a package (`.Msg`).
pub(crate) fn fq_prefix(package: &str) -> String {
    if package.is_empty() {
        String::new()
    } else {
        format!(".{package}")
    }
}

/// Rust type of a well-known type, as prost maps it: wrappers and `Empty` become
/// Rust types, the rest come from `prost_types`.
fn well_known(name: &str) -> String {
    let prost = "::prost::alloc";
    match name {
        "Empty" => "()".to_owned(),
        "BoolValue" => "bool".to_owned(),
        "BytesValue" => format!("{prost}::vec::Vec<u8>"),
        "DoubleValue" => "f64".to_owned(),
        "FloatValue" => "f32".to_owned(),
        "Int32Value" => "i32".to_owned(),
        "Int64Value" => "i64".to_owned(),
        "StringValue" => format!("{prost}::string::String"),
        "UInt32Value" => "u32".to_owned(),
        "UInt64Value" => "u64".to_owned(),
        other => {
            let mut parts: Vec<&str> = other.split('.').collect();
            let last = to_upper_camel(parts.pop().unwrap_or_default());
            let mut path = "::prost_types::".to_owned();
            for p in parts {
                path.push_str(&to_snake(p));
                path.push_str("::");
            }
            path + &last
        }
    }
}

/// The file's stem (`dir/echo.proto` → `echo`).
pub(crate) fn stem(file: &FileDescriptorProto) -> &str {
    let name = file.name();
    let base = name.rsplit('/').next().unwrap_or(name);
    base.strip_suffix(".proto").unwrap_or(base)
}

/// Module path of the file's messages: package segments, or `[stem]` for a seed file.
pub(crate) fn file_module(file: &FileDescriptorProto) -> Vec<String> {
    if is_seed(file) {
        vec![to_snake(stem(file))]
    } else {
        package_module(file.package())
    }
}

/// `a.b` → `["a", "b"]` (snake case, as prost names package modules).
pub(crate) fn package_module(package: &str) -> Vec<String> {
    if package.is_empty() {
        Vec::new()
    } else {
        package.split('.').map(to_snake).collect()
    }
}

/// The file prost writes a package's messages to: module path joined by `.`
/// (`kw.match` → `kw.r#match.rs`), `_.rs` without a package.
pub(crate) fn package_file(package: &str, suffix: &str) -> String {
    if package.is_empty() {
        format!("_{suffix}")
    } else {
        format!("{}{suffix}", package_module(package).join("."))
    }
}

/// The seed convention: no package, no service, messages `request` and `response`.
pub(crate) fn is_seed(file: &FileDescriptorProto) -> bool {
    let has = |n: &str| file.message_type.iter().any(|m| m.name() == n);
    file.package().is_empty() && file.service.is_empty() && has("request") && has("response")
}

fn comments(file: &FileDescriptorProto, path: &[i32]) -> Vec<String> {
    let Some(info) = &file.source_code_info else {
        return Vec::new();
    };
    info.location
        .iter()
        .find(|l| l.path == path)
        .and_then(|l| l.leading_comments.as_deref())
        .map(|c| c.trim_end().lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Whether prost gives message `msg` a module (`snake(name)`) for its nested items:
/// nested enums, nested messages other than map entries, or a real oneof. The
/// synthetic oneofs of proto3 `optional` fields become plain `Option` fields.
pub(crate) fn has_module(msg: &DescriptorProto) -> bool {
    let is_map_entry =
        |m: &DescriptorProto| m.options.as_ref().and_then(|o| o.map_entry) == Some(true);
    let real_oneof = msg
        .field
        .iter()
        .any(|f| f.oneof_index.is_some() && !f.proto3_optional());
    !msg.enum_type.is_empty() || msg.nested_type.iter().any(|m| !is_map_entry(m)) || real_oneof
}

/// Inputs of lowering that are not in the descriptors.
#[derive(Debug)]
pub(crate) struct Lowering<'a> {
    /// Every message the generated code may name.
    pub(crate) index: &'a TypeIndex,
    /// Path of the runtime crate in generated code (`::clustergo`, or the
    /// front-end's override).
    pub(crate) runtime: TokenStream,
    /// The trait form of every service lowered.
    pub(crate) handler: HandlerForm,
    /// The message ids declared in the files (`option (clustergo.cmd)`).
    pub(crate) cmds: &'a Cmds,
}

impl Lowering<'_> {
    fn service(&self, name: &str) -> Service {
        let mut service = Service::new(name, Span::call_site());
        service.runtime = self.runtime.clone();
        service.handler = self.handler;
        service
    }

    /// Lowers a seed-convention file ([`is_seed`]) into the service of module
    /// `snake(stem)`, checked against the names prost puts beside it.
    pub(crate) fn seed(&self, file: &FileDescriptorProto) -> Result<Service, String> {
        let fname = file.name();
        let mut service = self.service(stem(file));
        service.docs = vec![format!(
            " Seed-convention service from `{fname}` (messages `request` → `response`)."
        )];
        service.methods.push(Method {
            name: naming::SEED_METHOD.to_owned(),
            wire: wire_name("", stem(file), naming::SEED_METHOD),
            input: quote::quote!(Request),
            output: quote::quote!(Response),
            kind: MethodKind::Unary,
            docs: Vec::new(),
            span: Span::call_site(),
        });
        let taken: Vec<String> = file
            .message_type
            .iter()
            .map(|m| to_upper_camel(m.name()))
            .chain(file.enum_type.iter().map(|e| to_upper_camel(e.name())))
            .chain(
                file.message_type
                    .iter()
                    .filter(|m| has_module(m))
                    .map(|m| to_snake(m.name())),
            )
            .collect();
        if let Some(c) = service.clashes(&taken).first() {
            return Err(format!("{fname}: {}", c.message));
        }
        Ok(service)
    }

    /// Lowers the `service` blocks of `files`, all of package `package` and written
    /// to one package module, into one service module each. A service module must
    /// not clash with another service's, with a module prost makes for a message of
    /// any of `files`, or with a sub-package module (`children`).
    pub(crate) fn package(
        &self,
        package: &str,
        files: &[&FileDescriptorProto],
        children: &[String],
    ) -> Result<Vec<Service>, String> {
        let mut modules: BTreeMap<String, String> = children
            .iter()
            .map(|c| {
                let owner = if package.is_empty() {
                    format!("package `{c}`")
                } else {
                    format!("package `{package}.{c}`")
                };
                (c.clone(), owner)
            })
            .collect();
        for file in files {
            for m in file.message_type.iter().filter(|m| has_module(m)) {
                modules
                    .entry(to_snake(m.name()))
                    .or_insert_with(|| format!("message `{}` of {}", m.name(), file.name()));
            }
        }
        let mut out = Vec::new();
        for file in files {
            for (si, s) in file.service.iter().enumerate() {
                let names = ServiceNames::new(s.name());
                if let Some(owner) = modules.get(&names.module) {
                    return Err(format!(
                        "{}: service `{}` would become module `{}`, which clashes with {owner}",
                        file.name(),
                        s.name(),
                        names.module
                    ));
                }
                modules.insert(
                    names.module.clone(),
                    format!("service `{}` of {}", s.name(), file.name()),
                );
                out.push(self.service_block(file, si)?);
            }
        }
        Ok(out)
    }

    /// The message ids of `files`, whose messages all live in module `module` (a
    /// package's, or a seed file's `[stem]`), checked as one scope (`scope` names
    /// it in errors). `None` if no message declares an id.
    pub(crate) fn message_ids(
        &self,
        scope: &str,
        files: &[&FileDescriptorProto],
        module: &[String],
    ) -> Result<Option<MessageIds>, String> {
        fn walk(msgs: &[DescriptorProto], fq: &str, rel: &str, out: &mut Vec<(String, String)>) {
            for m in msgs {
                let fq = format!("{fq}.{}", m.name());
                let rel = if rel.is_empty() {
                    m.name().to_owned()
                } else {
                    format!("{rel}.{}", m.name())
                };
                out.push((fq.clone(), rel.clone()));
                walk(&m.nested_type, &fq, &rel, out);
            }
        }
        let mut declared = Vec::new();
        let mut fqs = Vec::new();
        for file in files {
            let prefix = fq_prefix(file.package());
            let mut messages = Vec::new();
            walk(&file.message_type, &prefix, "", &mut messages);
            for (fq, message) in messages {
                if let Some(value) = self.cmds.get(&fq) {
                    declared.push(Declared {
                        file: file.name().to_owned(),
                        message,
                        value,
                    });
                    fqs.push(fq);
                }
            }
        }
        let ids = options::check(scope, &declared)?;
        if ids.is_empty() {
            return Ok(None);
        }
        let messages = declared
            .into_iter()
            .zip(fqs)
            .zip(ids)
            .map(|((d, fq), cmd)| {
                let path = self
                    .index
                    .path(&fq, module)
                    .ok_or_else(|| format!("{}: message `{}`: no Rust path", d.file, d.message))?;
                Ok(MessageId {
                    name: d.message,
                    path,
                    cmd,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Some(MessageIds {
            runtime: self.runtime.clone(),
            messages,
        }))
    }

    /// Lowers `service` block `si` of `file`.
    fn service_block(&self, file: &FileDescriptorProto, si: usize) -> Result<Service, String> {
        let fname = file.name();
        let s = &file.service[si];
        let mut here = package_module(file.package());
        here.push(ServiceNames::new(s.name()).module);
        let mut service = self.service(s.name());
        service.docs = comments(file, &[6, si as i32]);
        for (mi, m) in s.method.iter().enumerate() {
            let what = format!("{fname}: method `{}.{}`", s.name(), m.name());
            let resolve = |t: &str| {
                self.index
                    .path(t, &here)
                    .ok_or_else(|| format!("{what}: unknown message type `{t}`"))
            };
            service.methods.push(Method {
                name: m.name().to_owned(),
                wire: wire_name(file.package(), s.name(), m.name()),
                input: resolve(m.input_type())?,
                output: resolve(m.output_type())?,
                kind: MethodKind::new(m.client_streaming(), m.server_streaming()),
                docs: comments(file, &[6, si as i32, 2, mi as i32]),
                span: Span::call_site(),
            });
        }
        if let Some(c) = service.clashes(&[]).first() {
            return Err(format!("{fname}: service `{}`: {}", s.name(), c.message));
        }
        Ok(service)
    }
}

#[cfg(test)]
mod tests {
    use prost_types::{FieldDescriptorProto, MessageOptions, OneofDescriptorProto};

    use super::*;

    fn field(oneof: Option<i32>, proto3_optional: bool) -> FieldDescriptorProto {
        FieldDescriptorProto {
            oneof_index: oneof,
            proto3_optional: Some(proto3_optional),
            ..Default::default()
        }
    }

    #[test]
    fn which_messages_get_a_prost_module() {
        let map_entry = DescriptorProto {
            options: Some(MessageOptions {
                map_entry: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let oneof = vec![OneofDescriptorProto::default()];
        let cases: Vec<(&str, DescriptorProto, bool)> = vec![
            ("plain", DescriptorProto::default(), false),
            (
                "proto3 optional (synthetic oneof)",
                DescriptorProto {
                    field: vec![field(Some(0), true)],
                    oneof_decl: oneof.clone(),
                    ..Default::default()
                },
                false,
            ),
            (
                "map field (map entry)",
                DescriptorProto {
                    nested_type: vec![map_entry],
                    ..Default::default()
                },
                false,
            ),
            (
                "real oneof",
                DescriptorProto {
                    field: vec![field(Some(0), false)],
                    oneof_decl: oneof,
                    ..Default::default()
                },
                true,
            ),
            (
                "nested message",
                DescriptorProto {
                    nested_type: vec![DescriptorProto::default()],
                    ..Default::default()
                },
                true,
            ),
            (
                "nested enum",
                DescriptorProto {
                    enum_type: vec![Default::default()],
                    ..Default::default()
                },
                true,
            ),
        ];
        for (what, msg, want) in cases {
            assert_eq!(has_module(&msg), want, "{what}");
        }
    }
}
