//! The request metadata's layout: a list of keyed records, so several users
//! (interceptors' bytes, the trace context, later keys) share one field.
//!
//! ```text
//! meta:   record*
//! record: u8 key | u32 len | value
//! ```
//!
//! Keys: [`APP`] (the bytes client interceptors write, surfaced by
//! [`super::RpcContext::meta`]), [`TRACE`] (a [`super::TraceContext`]). A reader
//! skips keys it does not know; a truncated record ends the list (what came
//! before it still counts), so a malformed meta never fails a request.

use bytes::Bytes;

/// The client interceptors' opaque bytes.
pub(crate) const APP: u8 = 0;
/// The caller's trace context (25 bytes, see [`super::TraceContext::to_bytes`]).
pub(crate) const TRACE: u8 = 1;

/// Appends one record.
pub(crate) fn put(dst: &mut Vec<u8>, key: u8, value: &[u8]) {
    dst.push(key);
    dst.extend_from_slice(&(value.len() as u32).to_be_bytes());
    dst.extend_from_slice(value);
}

/// The value of the first record with `key`: a slice of `meta`, not a copy.
pub(crate) fn get(meta: &Bytes, key: u8) -> Option<Bytes> {
    let mut at = 0;
    while meta.len() - at >= 5 {
        let k = meta[at];
        let len =
            u32::from_be_bytes([meta[at + 1], meta[at + 2], meta[at + 3], meta[at + 4]]) as usize;
        let start = at + 5;
        if meta.len() - start < len {
            return None;
        }
        if k == key {
            return Some(meta.slice(start..start + len));
        }
        at = start + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_malformed_meta_is_ignored() {
        let mut m = Vec::new();
        put(&mut m, 9, b"future key");
        put(&mut m, APP, b"token");
        put(&mut m, TRACE, &[7; 25]);
        let m = Bytes::from(m);
        assert_eq!(get(&m, APP).as_deref(), Some(&b"token"[..]));
        assert_eq!(get(&m, TRACE).as_deref(), Some(&[7u8; 25][..]));
        assert_eq!(get(&m, 2), None);
        /// Raw meta, key looked up, value found, why.
        type Case = (&'static [u8], u8, Option<&'static [u8]>, &'static str);
        let cases: &[Case] = &[
            (b"", APP, None, "empty"),
            (b"\x00\x00\x00", APP, None, "truncated length"),
            (b"\x00\x00\x00\x00\x05ab", APP, None, "truncated value"),
            (b"\x00\x00\x00\x00\x00", APP, Some(b""), "empty value"),
            (
                b"\x00\x00\x00\x00\x01a\x01\xff\xff\xff\xff",
                APP,
                Some(b"a"),
                "bad tail after",
            ),
            (
                b"\x00\x00\x00\x00\x01a\x01\xff\xff\xff\xff",
                TRACE,
                None,
                "huge length",
            ),
        ];
        for (raw, key, want, why) in cases {
            assert_eq!(
                get(&Bytes::from_static(raw), *key).as_deref(),
                *want,
                "{why}"
            );
        }
    }
}
