//! The build.rs front-end: protox parses, prost-build writes the messages, and
//! [`generate::files`] (shared with the plugin) writes the service modules.

use std::io;
use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use prost::Message;
use prost_types::{FileDescriptorProto, FileDescriptorSet};
use protox::file::{ChainFileResolver, FileResolver, GoogleFileResolver, IncludeFileResolver};
use quote::quote;

use crate::descriptor::{self, Lowering, TypeIndex};
use crate::model::HandlerForm;
use crate::options::{Cmds, EncodedSet, OPTIONS_FILE, OPTIONS_PROTO};
use crate::tree::Tree;
use crate::{emit, generate};

/// Starts a [`Builder`] with the defaults.
///
/// ```no_run
/// // build.rs
/// fn main() -> std::io::Result<()> {
///     protoc_gen_clustergo::configure().compile_protos(&["proto/echo.proto"], &["proto"])
/// }
/// // src/lib.rs:  include!(concat!(env!("OUT_DIR"), "/clustergo.rs"));
/// ```
pub fn configure() -> Builder {
    Builder {
        out_dir: None,
        include_file: "clustergo.rs".to_owned(),
        rerun_if_changed: true,
        runtime_crate: None,
        handler: HandlerForm::Replyer,
    }
}

/// Generates messages and service modules from `.proto` files in a build script.
///
/// Writes prost's message files, the service modules, and one module tree file
/// (default `clustergo.rs`) to include from the crate. Seed-convention files (no
/// package, no `service`, messages `request` and `response`) become module
/// `<stem>`; packages become nested modules holding one module per `service`.
/// No system `protoc` is needed: `.proto` files are parsed by protox.
#[derive(Debug, Clone)]
pub struct Builder {
    out_dir: Option<PathBuf>,
    include_file: String,
    rerun_if_changed: bool,
    runtime_crate: Option<TokenStream>,
    handler: HandlerForm,
}

impl Builder {
    /// Output directory (default: `$OUT_DIR`).
    pub fn out_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.out_dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Name of the module tree file to `include!` (default `clustergo.rs`).
    pub fn include_file(mut self, name: impl Into<String>) -> Self {
        self.include_file = name.into();
        self
    }

    /// Path of the clustergo crate in generated code (default `::clustergo`); set
    /// it when the dependency is renamed, e.g. `runtime_crate("::cg")`.
    ///
    /// # Panics
    /// If `path` is not a Rust path (a bug in the build script).
    pub fn runtime_crate(mut self, path: &str) -> Self {
        let parsed: syn::Path = syn::parse_str(path)
            .unwrap_or_else(|e| panic!("runtime_crate({path:?}) is not a path: {e}"));
        self.runtime_crate = Some(quote!(#parsed));
        self
    }

    /// The trait form of every service (default [`HandlerForm::Replyer`]):
    /// `handler(HandlerForm::Async)` for `async fn m(&self, ctx, request) -> Result<..>`.
    pub fn handler(mut self, form: HandlerForm) -> Self {
        self.handler = form;
        self
    }

    /// Whether to print `cargo:rerun-if-changed` for the inputs (default true).
    pub fn emit_rerun_if_changed(mut self, on: bool) -> Self {
        self.rerun_if_changed = on;
        self
    }

    /// Parses `protos` (searching `includes` for imports) and generates code.
    ///
    /// `import "clustergo/options.proto";` works without adding anything to
    /// `includes`: the file ships with this crate and is served from memory (it
    /// wins over a copy in `includes`, so the ids are read as this version
    /// declares them).
    pub fn compile_protos(
        self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> io::Result<()> {
        if self.rerun_if_changed {
            for p in protos {
                println!("cargo:rerun-if-changed={}", p.as_ref().display());
            }
            for i in includes {
                println!("cargo:rerun-if-changed={}", i.as_ref().display());
            }
        }
        // Each file is parsed on its own first: seed files all define `request` and
        // `response` in the root namespace, so they cannot share one descriptor set.
        let mut seeds = Vec::new();
        let (mut rest, mut encoded_rest) = (Vec::new(), Vec::new());
        let mut targets = Vec::new();
        for proto in protos {
            let (fds, encoded) = parse(proto.as_ref(), includes)?;
            let target = fds.file.last().ok_or_else(|| {
                io::Error::other(format!("{}: no file parsed", proto.as_ref().display()))
            })?;
            if descriptor::is_seed(target) {
                let name = target.name().to_owned();
                let cmds = Cmds::read(&fds.file, encoded.iter().map(Vec::as_slice))
                    .map_err(io::Error::other)?;
                seeds.push(Parsed {
                    files: without_options(fds.file, &[name]),
                    cmds,
                });
            } else {
                targets.push(target.name().to_owned());
                for (f, e) in fds.file.into_iter().zip(encoded) {
                    if !rest
                        .iter()
                        .any(|r: &FileDescriptorProto| r.name() == f.name())
                    {
                        rest.push(f);
                        encoded_rest.push(e);
                    }
                }
            }
        }
        let rest = Parsed {
            cmds: Cmds::read(&rest, encoded_rest.iter().map(Vec::as_slice))
                .map_err(io::Error::other)?,
            files: without_options(rest, &targets),
        };
        self.generate(seeds, rest)
    }

    /// Generates code from an already parsed descriptor set (at most one seed file).
    ///
    /// Message ids (`option (clustergo.cmd)`) are not seen here: prost-types'
    /// descriptors have dropped the options' extensions. Use
    /// [`compile_protos`](Self::compile_protos) for them.
    pub fn compile_fds(self, fds: FileDescriptorSet) -> io::Result<()> {
        let (seeds, rest): (Vec<_>, Vec<_>) = fds
            .file
            .into_iter()
            .filter(|f| f.name() != OPTIONS_FILE)
            .partition(descriptor::is_seed);
        let seeds = seeds
            .into_iter()
            .map(|f| Parsed {
                files: vec![f],
                ..Parsed::default()
            })
            .collect();
        self.generate(
            seeds,
            Parsed {
                files: rest,
                ..Parsed::default()
            },
        )
    }

    /// `seeds`: one set per seed file (the seed file last, after its imports).
    fn generate(self, seeds: Vec<Parsed>, rest: Parsed) -> io::Result<()> {
        let out = match self.out_dir {
            Some(d) => d,
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or_else(|| io::Error::other("OUT_DIR is not set; call out_dir(..)"))?,
        };
        std::fs::create_dir_all(&out)?;
        let runtime = self.runtime_crate.unwrap_or_else(|| quote!(::clustergo));
        let mut tree = Tree::default();
        let mut written = Vec::new();

        for set in seeds {
            let index = TypeIndex::new(&set.files);
            let lowering = Lowering {
                index: &index,
                runtime: runtime.clone(),
                handler: self.handler,
                cmds: &set.cmds,
            };
            let file = set.files.last().expect("seed set holds the seed file");
            let files =
                generate::files(&[file], &lowering, HEADER, &mut tree).map_err(io::Error::other)?;
            let module = descriptor::file_module(file).remove(0);
            std::fs::create_dir_all(out.join(&module))?;
            prost_build::Config::new()
                .out_dir(out.join(&module))
                .compile_fds(FileDescriptorSet { file: set.files })?;
            written.extend(files);
        }

        if !rest.files.is_empty() {
            let index = TypeIndex::new(&rest.files);
            let lowering = Lowering {
                index: &index,
                runtime,
                handler: self.handler,
                cmds: &rest.cmds,
            };
            let all: Vec<&FileDescriptorProto> = rest.files.iter().collect();
            let files =
                generate::files(&all, &lowering, HEADER, &mut tree).map_err(io::Error::other)?;
            let packages: Vec<String> = rest.files.iter().map(|f| f.package().to_owned()).collect();
            prost_build::Config::new()
                .out_dir(&out)
                .compile_fds(FileDescriptorSet { file: rest.files })?;
            // prost-build skips packages without messages; the tree includes them.
            for pkg in packages {
                let path = out.join(descriptor::package_file(&pkg, ".rs"));
                if !path.exists() {
                    std::fs::write(path, "")?;
                }
            }
            written.extend(files);
        }
        for (name, content) in written {
            write_if_changed(&out.join(name), &content)?;
        }
        let tree = emit::format_file(HEADER, tree.tokens());
        write_if_changed(&out.join(&self.include_file), &tree)
    }
}

const HEADER: &str = "// @generated by protoc-gen-clustergo (build.rs). Do not edit.\n\n";

/// Parsed files and the message ids declared in them.
#[derive(Debug, Default)]
struct Parsed {
    files: Vec<FileDescriptorProto>,
    cmds: Cmds,
}

/// Serves the shipped `clustergo/options.proto` from memory.
#[derive(Debug)]
struct ShippedOptions;

impl FileResolver for ShippedOptions {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        if name == OPTIONS_FILE {
            protox::file::File::from_source(name, OPTIONS_PROTO)
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

/// Parses `proto` and its imports with protox: the descriptors (imports first),
/// and the same files as encoded, which keep the options' extensions.
fn parse(
    proto: &Path,
    includes: &[impl AsRef<Path>],
) -> io::Result<(FileDescriptorSet, Vec<Vec<u8>>)> {
    let mut resolver = ChainFileResolver::new();
    resolver.add(ShippedOptions);
    for include in includes {
        resolver.add(IncludeFileResolver::new(include.as_ref().to_owned()));
    }
    resolver.add(GoogleFileResolver::new());
    let encoded = protox::Compiler::with_file_resolver(resolver)
        .include_source_info(true)
        .include_imports(true)
        .open_file(proto)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?
        .encode_file_descriptor_set();
    let fds = FileDescriptorSet::decode(encoded.as_slice()).map_err(io::Error::other)?;
    let files = EncodedSet::decode(encoded.as_slice())
        .map_err(io::Error::other)?
        .file;
    Ok((fds, files))
}

/// `files` without the options file and what only it imports
/// (`google/protobuf/descriptor.proto`): they make no Rust items, and package
/// `clustergo` would make a module whose file is the default tree file's name.
fn without_options(
    files: Vec<FileDescriptorProto>,
    targets: &[String],
) -> Vec<FileDescriptorProto> {
    let mut keep: Vec<&str> = Vec::new();
    let mut stack: Vec<&str> = targets.iter().map(String::as_str).collect();
    while let Some(name) = stack.pop() {
        if name == OPTIONS_FILE || keep.contains(&name) {
            continue;
        }
        keep.push(name);
        if let Some(f) = files.iter().find(|f| f.name() == name) {
            stack.extend(f.dependency.iter().map(String::as_str));
        }
    }
    let keep: Vec<String> = keep.into_iter().map(str::to_owned).collect();
    files
        .into_iter()
        .filter(|f| keep.iter().any(|k| k == f.name()))
        .collect()
}

fn write_if_changed(path: &Path, content: &str) -> io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == content) {
        return Ok(());
    }
    std::fs::write(path, content)
}
