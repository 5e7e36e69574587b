//! How RPC arguments and results become bytes. [`ProstCodec`] is the default; other
//! encodings implement [`Codec`] for their types.

use bytes::{Bytes, BytesMut};

/// Why a [`Codec`] could not encode or decode a value. Carries the codec's message;
/// a call that fails this way ends with [`super::RpcError::Codec`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CodecError {
    message: String,
}

impl CodecError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// What went wrong, as the codec said it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Encodes and decodes values of `T`. Codecs are zero-sized markers chosen by type.
pub trait Codec<T>: Send + Sync + 'static {
    /// Appends `value` to `buf`, leaving what `buf` already holds untouched: it
    /// may carry other frames (a streaming call encodes straight into its next
    /// write).
    fn encode(value: &T, buf: &mut BytesMut) -> Result<(), CodecError>;
    /// Reads a value from a whole message.
    fn decode(buf: Bytes) -> Result<T, CodecError>;
}

/// Protocol Buffers through prost.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProstCodec;

impl<T: prost::Message + Default> Codec<T> for ProstCodec {
    fn encode(value: &T, buf: &mut BytesMut) -> Result<(), CodecError> {
        value
            .encode(buf)
            .map_err(|e| CodecError::new(e.to_string()))
    }

    fn decode(buf: Bytes) -> Result<T, CodecError> {
        T::decode(buf).map_err(|e| CodecError::new(e.to_string()))
    }
}

/// JSON through serde: the Go seed's `JsonCodec` (`encoding/json`), for services
/// whose Go side registered that codec. Field names are the serde names: give the
/// Rust types the Go struct's (`#[serde(rename = "Msg")]`).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCodec;

impl<T: serde::Serialize + serde::de::DeserializeOwned> Codec<T> for JsonCodec {
    fn encode(value: &T, buf: &mut BytesMut) -> Result<(), CodecError> {
        use bytes::BufMut;
        serde_json::to_writer(buf.writer(), value).map_err(|e| CodecError::new(e.to_string()))
    }

    fn decode(buf: Bytes) -> Result<T, CodecError> {
        serde_json::from_slice(&buf).map_err(|e| CodecError::new(e.to_string()))
    }
}

/// Raw bytes, passed through unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesCodec;

impl Codec<Bytes> for BytesCodec {
    fn encode(value: &Bytes, buf: &mut BytesMut) -> Result<(), CodecError> {
        buf.extend_from_slice(value);
        Ok(())
    }

    fn decode(buf: Bytes) -> Result<Bytes, CodecError> {
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_the_codec_message() {
        let bad = Bytes::from_static(&[0xff]);
        let e = <ProstCodec as Codec<u32>>::decode(bad).unwrap_err();
        assert!(!e.message().is_empty());
        assert_eq!(e.to_string(), e.message());
        assert_eq!(CodecError::new("nope").to_string(), "nope");
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Req {
        #[serde(rename = "Msg")]
        msg: String,
    }

    #[test]
    fn json_as_go_writes_it() {
        let mut buf = BytesMut::new();
        let req = Req {
            msg: "sniperHW".into(),
        };
        JsonCodec::encode(&req, &mut buf).unwrap();
        assert_eq!(&buf[..], br#"{"Msg":"sniperHW"}"#);
        assert_eq!(
            <JsonCodec as Codec<Req>>::decode(buf.freeze()).unwrap(),
            req
        );
        assert!(<JsonCodec as Codec<Req>>::decode(Bytes::from_static(b"{")).is_err());
    }
}
