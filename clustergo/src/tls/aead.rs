//! The AEAD behind TLS records (`record.rs`): aws-lc-rs or ring, whichever seals
//! and opens faster on this CPU.
//!
//! aws-lc-rs seals and opens out of place (the cipher is the only pass over the
//! data) and has an AVX-512 AES-GCM (11.4 GB/s per core on a Zen 4), but without
//! AVX-512 it falls back to AES-NI code (4.7 GB/s there), where ring has a
//! VAES/AVX2 one (9.1 GB/s). ring works in place only, so a record costs one copy
//! more with it; that is the better trade on such CPUs (BENCHMARKS.md, "TLS
//! records"). Both implement the same AEADs: a record sealed by one opens with
//! the other.

use std::io;

use aws_lc_rs::aead as lc;
use ring::aead as rg;

use super::record::TAG_LEN;

/// Which library does the cipher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    AwsLc,
    Ring,
}

impl Backend {
    /// The faster one on this CPU: ring where it has its VAES/AVX2 AES-GCM and
    /// aws-lc-rs would not use AVX-512 (the condition of aws-lc's `gcm.c`);
    /// aws-lc-rs everywhere else.
    pub(crate) fn for_this_cpu() -> Self {
        #[cfg(test)]
        if let Some(forced) = FORCED.with(std::cell::Cell::get) {
            return forced;
        }
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            Self::choose(Cpu {
                vaes: has!("vaes") && has!("vpclmulqdq"),
                avx2: has!("avx2"),
                avx512: has!("avx512f") && has!("avx512bw") && has!("avx512vl"),
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        Backend::AwsLc
    }

    /// The choice for an x86-64 CPU with these features.
    fn choose(cpu: Cpu) -> Self {
        if cpu.vaes && cpu.avx2 && !cpu.avx512 {
            Backend::Ring
        } else {
            Backend::AwsLc
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Tests on this thread use this library whatever the CPU (both paths run
    /// on every machine).
    pub(crate) static FORCED: std::cell::Cell<Option<Backend>> = const { std::cell::Cell::new(None) };
}

/// What the choice of [`Backend`] looks at on x86-64.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Cpu {
    /// VAES and VPCLMULQDQ.
    vaes: bool,
    avx2: bool,
    /// AVX-512 F, BW and VL.
    avx512: bool,
}

/// The AEADs of TLS 1.3's cipher suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20Poly1305,
}

/// A key of one of the [`Algorithm`]s, in one [`Backend`].
pub(crate) enum Aead {
    AwsLc(lc::LessSafeKey),
    // Boxed: ring keeps its key schedule inline (544 bytes).
    Ring(Box<rg::LessSafeKey>),
}

fn failed(what: &str) -> io::Error {
    io::Error::other(format!("tls: {what}"))
}

/// The integrity check failed: the record was forged or damaged.
fn forged() -> io::Error {
    super::record::bad("a record failed its integrity check")
}

impl Aead {
    pub(crate) fn new(algorithm: Algorithm, key: &[u8], backend: Backend) -> io::Result<Self> {
        let bad_key = |_| failed("bad traffic key");
        Ok(match backend {
            Backend::AwsLc => {
                let algorithm = match algorithm {
                    Algorithm::Aes128Gcm => &lc::AES_128_GCM,
                    Algorithm::Aes256Gcm => &lc::AES_256_GCM,
                    Algorithm::Chacha20Poly1305 => &lc::CHACHA20_POLY1305,
                };
                let key = lc::UnboundKey::new(algorithm, key).map_err(bad_key)?;
                Aead::AwsLc(lc::LessSafeKey::new(key))
            }
            Backend::Ring => {
                let algorithm = match algorithm {
                    Algorithm::Aes128Gcm => &rg::AES_128_GCM,
                    Algorithm::Aes256Gcm => &rg::AES_256_GCM,
                    Algorithm::Chacha20Poly1305 => &rg::CHACHA20_POLY1305,
                };
                let key =
                    rg::UnboundKey::new(algorithm, key).map_err(|_| failed("bad traffic key"))?;
                Aead::Ring(Box::new(rg::LessSafeKey::new(key)))
            }
        })
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Aead::AwsLc(_) => Backend::AwsLc,
            Aead::Ring(_) => Backend::Ring,
        }
    }

    /// Seals `data` followed by the byte `typ` into `out` (`data.len() + 1 +
    /// TAG_LEN` bytes: ciphertext, then tag).
    pub(crate) fn seal_into(
        &self,
        nonce: [u8; 12],
        aad: [u8; 5],
        data: &[u8],
        typ: u8,
        out: &mut [u8],
    ) -> io::Result<()> {
        let (ciphertext, type_and_tag) = out.split_at_mut(data.len());
        match self {
            Aead::AwsLc(key) => key
                .seal_out_of_place_scatter(
                    lc::Nonce::assume_unique_for_key(nonce),
                    lc::Aad::from(aad),
                    data,
                    ciphertext,
                    &[typ],
                    type_and_tag,
                )
                .map_err(|_| failed("sealing a record failed")),
            Aead::Ring(_) => {
                ciphertext.copy_from_slice(data);
                type_and_tag[0] = typ;
                let len = data.len() + 1;
                let tag = self.seal_in_place(nonce, aad, &mut out[..len])?;
                out[len..len + TAG_LEN].copy_from_slice(&tag);
                Ok(())
            }
        }
    }

    /// Seals `in_out` where it lies; returns the tag.
    pub(crate) fn seal_in_place(
        &self,
        nonce: [u8; 12],
        aad: [u8; 5],
        in_out: &mut [u8],
    ) -> io::Result<[u8; TAG_LEN]> {
        let sealing = || failed("sealing a record failed");
        let mut tag = [0; TAG_LEN];
        match self {
            Aead::AwsLc(key) => {
                let t = key
                    .seal_in_place_separate_tag(
                        lc::Nonce::assume_unique_for_key(nonce),
                        lc::Aad::from(aad),
                        in_out,
                    )
                    .map_err(|_| sealing())?;
                tag.copy_from_slice(t.as_ref());
            }
            Aead::Ring(key) => {
                let t = key
                    .seal_in_place_separate_tag(
                        rg::Nonce::assume_unique_for_key(nonce),
                        rg::Aad::from(aad),
                        in_out,
                    )
                    .map_err(|_| sealing())?;
                tag.copy_from_slice(t.as_ref());
            }
        }
        Ok(tag)
    }

    /// Opens `ciphertext` with its `tag` into `out` (as long as `ciphertext`).
    pub(crate) fn open_into(
        &self,
        nonce: [u8; 12],
        aad: [u8; 5],
        ciphertext: &[u8],
        tag: &[u8],
        out: &mut [u8],
    ) -> io::Result<()> {
        match self {
            Aead::AwsLc(key) => key
                .open_separate_gather(
                    lc::Nonce::assume_unique_for_key(nonce),
                    lc::Aad::from(aad),
                    ciphertext,
                    tag,
                    out,
                )
                .map_err(|_| forged()),
            Aead::Ring(key) => {
                out.copy_from_slice(ciphertext);
                let tag = rg::Tag::try_from(tag).map_err(|_| forged())?;
                key.open_in_place_separate_tag(
                    rg::Nonce::assume_unique_for_key(nonce),
                    rg::Aad::from(aad),
                    tag,
                    out,
                    0..,
                )
                .map(|_| ())
                .map_err(|_| forged())
            }
        }
    }

    /// Opens `in_out` (ciphertext, then tag) where it lies; returns the plaintext.
    pub(crate) fn open_in_place<'a>(
        &self,
        nonce: [u8; 12],
        aad: [u8; 5],
        in_out: &'a mut [u8],
    ) -> io::Result<&'a mut [u8]> {
        match self {
            Aead::AwsLc(key) => key
                .open_in_place(
                    lc::Nonce::assume_unique_for_key(nonce),
                    lc::Aad::from(aad),
                    in_out,
                )
                .map_err(|_| forged()),
            Aead::Ring(key) => key
                .open_in_place(
                    rg::Nonce::assume_unique_for_key(nonce),
                    rg::Aad::from(aad),
                    in_out,
                )
                .map_err(|_| forged()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALGORITHMS: [(Algorithm, usize); 3] = [
        (Algorithm::Aes128Gcm, 16),
        (Algorithm::Aes256Gcm, 32),
        (Algorithm::Chacha20Poly1305, 32),
    ];
    const BACKENDS: [Backend; 2] = [Backend::AwsLc, Backend::Ring];

    /// Every way to seal, with either library, opens every way with either, to
    /// the same bytes; a flipped bit opens nowhere.
    #[test]
    fn the_two_libraries_agree() {
        let aad = [23, 3, 3, 0, 0];
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 13) as u8).collect();
        for (algorithm, key_len) in ALGORITHMS {
            let key = vec![0x5a; key_len];
            for sealer in BACKENDS {
                let s = Aead::new(algorithm, &key, sealer).unwrap();
                assert_eq!(s.backend(), sealer);
                let mut out = vec![0; data.len() + 1 + TAG_LEN];
                s.seal_into([1; 12], aad, &data, 23, &mut out).unwrap();
                let mut gathered = [&data[..], &[23]].concat();
                let tag = s.seal_in_place([1; 12], aad, &mut gathered).unwrap();
                gathered.extend_from_slice(&tag);
                assert_eq!(out, gathered, "{algorithm:?} {sealer:?}");
                for opener in BACKENDS {
                    let o = Aead::new(algorithm, &key, opener).unwrap();
                    let (ciphertext, tag) = out.split_at(data.len() + 1);
                    let mut plain = vec![0; ciphertext.len()];
                    o.open_into([1; 12], aad, ciphertext, tag, &mut plain)
                        .unwrap();
                    assert_eq!(&plain[..data.len()], &data[..]);
                    assert_eq!(plain[data.len()], 23);
                    let mut in_place = out.clone();
                    let plain = o.open_in_place([1; 12], aad, &mut in_place).unwrap();
                    assert_eq!(&plain[..data.len()], &data[..]);
                    let mut flipped = out.clone();
                    flipped[7] ^= 0x40;
                    assert!(o.open_in_place([1; 12], aad, &mut flipped).is_err());
                    let (ciphertext, tag) = out.split_at(data.len() + 1);
                    assert!(
                        o.open_into([2; 12], aad, ciphertext, tag, &mut vec![0; data.len() + 1])
                            .is_err()
                    );
                }
            }
        }
    }

    #[test]
    fn ring_only_where_it_has_vaes_avx2_and_aws_lc_no_avx512() {
        let cases = [
            // (vaes, avx2, avx512) → backend
            ((true, true, false), Backend::Ring), // Zen 3, Alder Lake
            ((true, true, true), Backend::AwsLc), // Zen 4, Ice Lake and later
            ((false, true, true), Backend::AwsLc), // Skylake-SP: AES-NI in both
            ((false, true, false), Backend::AwsLc), // Haswell to Zen 2
            ((false, false, false), Backend::AwsLc), // older
        ];
        for ((vaes, avx2, avx512), want) in cases {
            assert_eq!(
                Backend::choose(Cpu { vaes, avx2, avx512 }),
                want,
                "{vaes} {avx2} {avx512}"
            );
        }
    }
}
