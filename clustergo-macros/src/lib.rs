//! The `#[clustergo::service]` attribute macro (filled in by the code-generation work).

use proc_macro::TokenStream;

/// Generates a typed service module from a trait.
#[proc_macro_attribute]
pub fn service(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
