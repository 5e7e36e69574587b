//! Logical addresses: how nodes name each other.
//!
//! A [`LogicAddr`] packs three fields into a `u32`, high to low:
//! `cluster` (14 bits) . `type` (8 bits) . `server` (10 bits), written `"c.t.s"`.
//! The layout follows the Go seed's code (its README says 12/8/12; its code uses 14/8/10).
//! Type 255 is reserved for harbor nodes, which route traffic between clusters.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bits of the cluster field.
pub const CLUSTER_BITS: u32 = 14;
/// Bits of the type field.
pub const TYPE_BITS: u32 = 8;
/// Bits of the server field.
pub const SERVER_BITS: u32 = 10;

/// Largest cluster number (16383).
pub const MAX_CLUSTER: u32 = (1 << CLUSTER_BITS) - 1;
/// Largest server number (1023).
pub const MAX_SERVER: u32 = (1 << SERVER_BITS) - 1;
/// The type reserved for harbors.
pub const HARBOR_TYPE: u32 = 255;
/// Largest type an ordinary (non-harbor) node may have.
pub const MAX_NORMAL_TYPE: u32 = HARBOR_TYPE - 1;

const SERVER_MASK: u32 = MAX_SERVER;
const TYPE_MASK: u32 = ((1 << TYPE_BITS) - 1) << SERVER_BITS;

/// Why a logical address was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// The text is not three dot-separated decimal numbers.
    #[error("invalid logic address {0:?}: expected \"cluster.type.server\"")]
    Syntax(String),
    /// Cluster 0 is not a cluster, and the field has 14 bits.
    #[error("invalid cluster {0}: must be 1..={MAX_CLUSTER}")]
    Cluster(u32),
    /// Type 0 is unused; 255 is reserved for harbors.
    #[error("invalid type {0}: must be 1..={MAX_NORMAL_TYPE} (255 is reserved for harbors)")]
    Type(u32),
    /// The server field has 10 bits.
    #[error("invalid server {0}: must be 0..={MAX_SERVER}")]
    Server(u32),
}

/// A node's logical address: `cluster.type.server` packed into a `u32`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LogicAddr(u32);

impl LogicAddr {
    /// Builds an ordinary node's address, validating every field.
    pub fn new(cluster: u32, typ: u32, server: u32) -> Result<Self, AddrError> {
        if typ == 0 || typ > MAX_NORMAL_TYPE {
            return Err(AddrError::Type(typ));
        }
        Self::with_any_type(cluster, typ, server)
    }

    /// Builds a harbor's address (type 255) in `cluster`.
    pub fn harbor(cluster: u32, server: u32) -> Result<Self, AddrError> {
        Self::with_any_type(cluster, HARBOR_TYPE, server)
    }

    fn with_any_type(cluster: u32, typ: u32, server: u32) -> Result<Self, AddrError> {
        if cluster == 0 || cluster > MAX_CLUSTER {
            return Err(AddrError::Cluster(cluster));
        }
        if server > MAX_SERVER {
            return Err(AddrError::Server(server));
        }
        Ok(Self(
            (cluster << (TYPE_BITS + SERVER_BITS)) | (typ << SERVER_BITS) | server,
        ))
    }

    /// Reinterprets a raw `u32` as read from the wire. No validation: relays must be
    /// able to carry any value, and lookups simply fail for addresses nobody owns.
    pub const fn from_raw(raw: u32) -> Self {
        Self(raw)
    }

    /// The packed `u32`.
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// The cluster field.
    pub const fn cluster(self) -> u32 {
        self.0 >> (TYPE_BITS + SERVER_BITS)
    }

    /// The type field.
    pub const fn typ(self) -> u32 {
        (self.0 & TYPE_MASK) >> SERVER_BITS
    }

    /// The server field.
    pub const fn server(self) -> u32 {
        self.0 & SERVER_MASK
    }

    /// Whether this is a harbor (type 255).
    pub const fn is_harbor(self) -> bool {
        self.typ() == HARBOR_TYPE
    }

    /// Whether both addresses are in the same cluster.
    pub const fn same_cluster(self, other: LogicAddr) -> bool {
        self.cluster() == other.cluster()
    }
}

impl fmt::Display for LogicAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.cluster(), self.typ(), self.server())
    }
}

impl fmt::Debug for LogicAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogicAddr({self})")
    }
}

impl FromStr for LogicAddr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, AddrError> {
        let syntax = || AddrError::Syntax(s.to_owned());
        let mut fields = [0u32; 3];
        let mut parts = s.split('.');
        for field in &mut fields {
            let part = parts.next().ok_or_else(syntax)?;
            if part.is_empty() || part.len() > 5 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            *field = part.parse().map_err(|_| syntax())?;
        }
        if parts.next().is_some() {
            return Err(syntax());
        }
        let [cluster, typ, server] = fields;
        if typ == HARBOR_TYPE {
            Self::harbor(cluster, server)
        } else {
            Self::new(cluster, typ, server)
        }
    }
}

impl TryFrom<&str> for LogicAddr {
    type Error = AddrError;
    fn try_from(s: &str) -> Result<Self, AddrError> {
        s.parse()
    }
}

impl Serialize for LogicAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LogicAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A node's full address: who it is ([`LogicAddr`]) and where it listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Addr {
    /// The logical address.
    pub logic: LogicAddr,
    /// The network address the node listens on.
    pub net: SocketAddr,
}

impl Addr {
    /// Pairs a logical address with a listen address.
    pub fn new(logic: LogicAddr, net: SocketAddr) -> Self {
        Self { logic, net }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fields() {
        for text in ["1.1.1", "16383.254.1023", "7.255.0", "1.2.0"] {
            let a: LogicAddr = text.parse().unwrap();
            assert_eq!(a.to_string(), text);
            assert_eq!(LogicAddr::from_raw(a.raw()), a);
        }
        let a = LogicAddr::new(3, 4, 5).unwrap();
        assert_eq!((a.cluster(), a.typ(), a.server()), (3, 4, 5));
        assert_eq!(a.raw(), (3 << 18) | (4 << 10) | 5);
        assert!(!a.is_harbor());
        let h = LogicAddr::harbor(3, 1).unwrap();
        assert!(h.is_harbor());
        assert!(h.same_cluster(a));
        assert!(!h.same_cluster(LogicAddr::new(4, 4, 5).unwrap()));
    }

    #[test]
    fn rejections() {
        let cases = [
            ("0.1.1", AddrError::Cluster(0)),
            ("16384.1.1", AddrError::Cluster(16384)),
            ("1.0.1", AddrError::Type(0)),
            ("1.256.1", AddrError::Type(256)),
            ("1.1.1024", AddrError::Server(1024)),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<LogicAddr>(), Err(want), "{text}");
        }
        for junk in [
            "",
            "1",
            "1.1",
            "1.1.1.1",
            "a.b.c",
            "1..1",
            "-1.1.1",
            "1.1.1 ",
            " 1.1.1",
            "+1.1.1",
            "99999999999.1.1",
            "1.1.x",
        ] {
            assert_eq!(
                junk.parse::<LogicAddr>(),
                Err(AddrError::Syntax(junk.to_owned())),
                "{junk:?}"
            );
        }
        assert_eq!(LogicAddr::new(1, 255, 1), Err(AddrError::Type(255)));
        assert_eq!(LogicAddr::harbor(1, 2000), Err(AddrError::Server(2000)));
    }

    #[test]
    fn serde_as_text() {
        let a: LogicAddr = "2.3.4".parse().unwrap();
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"2.3.4\"");
        assert_eq!(serde_json::from_str::<LogicAddr>(&json).unwrap(), a);
        assert!(serde_json::from_str::<LogicAddr>("\"0.1.1\"").is_err());
    }
}
