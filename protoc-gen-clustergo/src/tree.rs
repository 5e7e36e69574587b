//! The module tree file (`include_file`) that nests package and seed modules and
//! `include!`s the generated files.

use std::collections::BTreeMap;

use proc_macro2::{Span, TokenStream};
use quote::quote;

use crate::naming::ident;

/// One module of the tree.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    doc: Option<String>,
    includes: Vec<String>,
    children: BTreeMap<String, Tree>,
}

impl Tree {
    /// The node for `path`, created on the way.
    pub(crate) fn at(&mut self, path: &[String]) -> &mut Tree {
        let mut node = self;
        for seg in path {
            node = node.children.entry(seg.clone()).or_default();
        }
        node
    }

    pub(crate) fn has_child(&self, name: &str) -> bool {
        self.children.contains_key(name)
    }

    /// Whether child `name` is a seed file's module.
    pub(crate) fn is_seed(&self, name: &str) -> bool {
        self.children.get(name).is_some_and(|c| c.doc.is_some())
    }

    /// Names of the child modules.
    pub(crate) fn children(&self) -> Vec<String> {
        self.children.keys().cloned().collect()
    }

    pub(crate) fn include(&mut self, file: impl Into<String>) -> &mut Self {
        let file = file.into();
        if !self.includes.contains(&file) {
            self.includes.push(file);
        }
        self
    }

    /// Marks this module as the one of seed file `file` (only seed modules have a
    /// doc of their own; package modules get a generic one).
    pub(crate) fn seed(&mut self, file: &str) -> &mut Self {
        self.doc = Some(format!(" Service from seed-convention file `{file}`."));
        self
    }

    pub(crate) fn tokens(&self) -> TokenStream {
        let includes = self.includes.iter().map(|f| quote!(include!(#f);));
        let children = self.children.iter().map(|(name, child)| {
            let id = ident(name, Span::call_site());
            let doc = child
                .doc
                .clone()
                .unwrap_or_else(|| format!(" Protobuf package module `{name}`."));
            let body = child.tokens();
            let allow = crate::emit::allow_attrs();
            quote! {
                #[doc = #doc]
                #allow
                pub mod #id {
                    #body
                }
            }
        });
        quote!(#(#includes)* #(#children)*)
    }
}
