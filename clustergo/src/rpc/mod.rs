//! Remote procedure calls between nodes.

mod codec;
mod error;
pub mod wire;

pub use codec::{BytesCodec, Codec, ProstCodec};
pub use error::{ErrorCode, RpcError};
