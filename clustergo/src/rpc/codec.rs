//! How RPC arguments and results become bytes. [`ProstCodec`] is the default; other
//! encodings implement [`Codec`] for their types.

use bytes::{Bytes, BytesMut};

/// Encodes and decodes values of `T`. Codecs are zero-sized markers chosen by type.
pub trait Codec<T>: Send + Sync + 'static {
    /// Appends `value` to `buf`.
    fn encode(value: &T, buf: &mut BytesMut) -> Result<(), String>;
    /// Reads a value from a whole message.
    fn decode(buf: Bytes) -> Result<T, String>;
}

/// Protocol Buffers through prost.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProstCodec;

impl<T: prost::Message + Default> Codec<T> for ProstCodec {
    fn encode(value: &T, buf: &mut BytesMut) -> Result<(), String> {
        value.encode(buf).map_err(|e| e.to_string())
    }

    fn decode(buf: Bytes) -> Result<T, String> {
        T::decode(buf).map_err(|e| e.to_string())
    }
}

/// Raw bytes, passed through unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesCodec;

impl Codec<Bytes> for BytesCodec {
    fn encode(value: &Bytes, buf: &mut BytesMut) -> Result<(), String> {
        buf.extend_from_slice(value);
        Ok(())
    }

    fn decode(buf: Bytes) -> Result<Bytes, String> {
        Ok(buf)
    }
}
