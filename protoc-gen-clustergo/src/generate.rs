//! From parsed `.proto` files to output files: the one path the protoc plugin and
//! the build.rs API share (lowering, clash checks, file layout, module tree).
//!
//! Layout (relative to the output directory):
//! - seed file `x.proto` → `x.rs`: `include!("x/_.rs");` (prost's messages), the
//!   message-id items and the service items; the tree gets `pub mod x { include!("x.rs"); }`;
//! - package `a.b` → `a.b.clustergo.rs` with the package's message-id items
//!   (`option (clustergo.cmd)`) and one module per `service` of the package's
//!   files; the tree gets `pub mod a { pub mod b { include!("a.b.rs");
//!   include!("a.b.clustergo.rs"); } }` (`a.b.rs` holds prost's messages).

use std::collections::BTreeMap;

use prost_types::FileDescriptorProto;
use quote::quote;

use crate::descriptor::{self, Lowering};
use crate::emit;
use crate::options::OPTIONS_FILE;
use crate::tree::Tree;

/// One output file: name relative to the output directory, and content.
pub(crate) type OutFile = (String, String);

/// Lowers `files` and lays them out, adding their modules to `tree` (which may
/// already hold modules of earlier runs: seed modules are checked against them).
pub(crate) fn files(
    files: &[&FileDescriptorProto],
    lowering: &Lowering<'_>,
    header: &str,
    tree: &mut Tree,
) -> Result<Vec<OutFile>, String> {
    let mut out = Vec::new();
    let mut packages: BTreeMap<&str, Vec<&FileDescriptorProto>> = BTreeMap::new();
    // The options file makes no Rust items (and package `clustergo` would make
    // module `clustergo`, whose file is the build.rs tree's default name).
    for &file in files.iter().filter(|f| f.name() != OPTIONS_FILE) {
        if !descriptor::is_seed(file) {
            packages.entry(file.package()).or_default().push(file);
            continue;
        }
        let service = lowering.seed(file)?;
        let module = descriptor::file_module(file).remove(0);
        if tree.has_child(&module) {
            return Err(format!(
                "{}: seed file makes module `{module}`, which another file already makes",
                file.name()
            ));
        }
        let scope = format!("seed file `{}`", file.name());
        let ids = lowering.message_ids(&scope, &[file], std::slice::from_ref(&module))?;
        let name = format!("{module}.rs");
        tree.at(std::slice::from_ref(&module))
            .seed(file.name())
            .include(name.clone());
        out.push((
            name,
            emit::seed_file(header, &module, &service, ids.as_ref()),
        ));
    }
    for (package, files) in &packages {
        let path = descriptor::package_module(package);
        if let Some(first) = path.first().filter(|m| tree.is_seed(m)) {
            return Err(format!(
                "{}: package `{package}` makes module `{first}`, which a seed file makes",
                files[0].name()
            ));
        }
        tree.at(&path)
            .include(descriptor::package_file(package, ".rs"));
    }
    for (package, files) in packages {
        let path = descriptor::package_module(package);
        let children = tree.at(&path).children();
        let services = lowering.package(package, &files, &children)?;
        let ids = lowering.message_ids(&format!("package `{package}`"), &files, &path)?;
        if services.is_empty() && ids.is_none() {
            continue;
        }
        let ids = ids.as_ref().map(emit::message_ids);
        let modules = services
            .iter()
            .map(|s| emit::module(s, &quote!(pub), Default::default()));
        let name = descriptor::package_file(package, ".clustergo.rs");
        tree.at(&path).include(name.clone());
        out.push((name, emit::format_file(header, quote!(#ids #(#modules)*))));
    }
    Ok(out)
}
