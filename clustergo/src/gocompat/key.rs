//! The handshake key of the Go seed: a short string padded to one AES-128 key
//! like the seed's `pkg/crypto.fixKey` does.

use std::fmt;

/// The key every Go seed node uses unless rebuilt with another.
pub const SEED_KEY: &str = "sanguo_2022";

/// An AES-128 key for the Go handshake. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct GoKey([u8; 16]);

/// A key string the seed's padding cannot make into an AES-128 key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a Go handshake key has 1 to 16 bytes, not {0}")]
pub struct GoKeyError(usize);

impl GoKey {
    /// The key made from `key` as the Go side makes it: 1–15 bytes are padded to 16
    /// with bytes of value `16 - len` (`"sanguo_2022"` + five `0x05`); 16 bytes are
    /// used as they are.
    pub fn new(key: &[u8]) -> Result<Self, GoKeyError> {
        if key.is_empty() || key.len() > 16 {
            return Err(GoKeyError(key.len()));
        }
        let pad = (16 - key.len()) as u8;
        let mut k = [pad; 16];
        k[..key.len()].copy_from_slice(key);
        Ok(Self(k))
    }

    /// The 16 key bytes.
    pub(crate) fn bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl Default for GoKey {
    fn default() -> Self {
        Self::new(SEED_KEY.as_bytes()).expect("the seed key has 11 bytes")
    }
}

impl fmt::Debug for GoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GoKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_like_the_seed() {
        let mut want = *b"sanguo_2022\x05\x05\x05\x05\x05";
        assert_eq!(GoKey::default().bytes(), &want);
        want = *b"0123456789abcdef";
        assert_eq!(GoKey::new(&want).unwrap().bytes(), &want);
        assert_eq!(GoKey::new(b"k").unwrap().bytes()[1..], [15u8; 15]);
        assert_eq!(GoKey::new(b""), Err(GoKeyError(0)));
        assert_eq!(GoKey::new(&[1; 17]), Err(GoKeyError(17)));
        assert!(!format!("{:?}", GoKey::default()).contains("sanguo"));
    }
}
