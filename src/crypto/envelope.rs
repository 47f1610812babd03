//! The encrypted object format (the "envelope").
//!
//! ```text
//! magic "LETH" | version u8 (=1) | key id length u8 | key id (UTF-8) | nonce (12 bytes)
//! | AES-256-GCM ciphertext with its 16-byte tag
//! ```
//!
//! The associated data is the whole header followed by a context string that names where the
//! object lives and what it claims to be (for a read: its object key and capture time). An object
//! that is modified, copied or moved to another key, or relabelled with another capture time, or
//! whose header names another key, fails to authenticate.
//!
//! Nonces are 96 random bits from the operating system's CSPRNG for every message. Keys are per
//! day (or per hold), so each key sees at most a few hundred thousand messages, far below the
//! 2^32 bound for random nonces (NIST SP 800-38D §8.3).
//!
//! **Changing this layout breaks stored data**: bump [`ENVELOPE_VERSION`] and keep a decoder.

use aes_gcm::aead::{Aead, AeadInOut, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use ring::rand::{SecureRandom, SystemRandom};

/// First bytes of every envelope.
pub const MAGIC: &[u8; 4] = b"LETH";
/// The envelope format version written now.
pub const ENVELOPE_VERSION: u8 = 1;
/// Nonce length in bytes.
pub const NONCE_LEN: usize = 12;
/// Tag length in bytes.
pub const TAG_LEN: usize = 16;

/// A 256-bit symmetric key.
#[derive(Clone)]
pub struct SymmetricKey(pub(crate) [u8; 32]);

impl std::fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SymmetricKey(<redacted>)")
    }
}

impl SymmetricKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        SystemRandom::new().fill(&mut k).expect("OS random");
        Self(k)
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }

    /// The raw bytes (for wrapping under another key).
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// A subkey for a purpose: HMAC-SHA256(key, label).
    pub fn derive(&self, label: &str) -> SymmetricKey {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        let tag = ring::hmac::sign(&k, label.as_bytes());
        SymmetricKey(tag.as_ref().try_into().expect("32 bytes"))
    }
}

/// Envelope errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Not an envelope at all, or cut short.
    #[error("not a lethe envelope or truncated ({0})")]
    Malformed(&'static str),
    /// Written by a newer format.
    #[error("envelope version {0} is not supported by this lethe")]
    Version(u8),
    /// Authentication failed: wrong key, or bytes/location/label changed.
    #[error("authentication failed: the object was modified, moved or relabelled, or the key is wrong")]
    Authentication,
}

/// The parsed header of an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Format version.
    pub version: u8,
    /// Which key sealed it, e.g. `day:2026-12-03`.
    pub key_id: String,
    /// The nonce.
    pub nonce: [u8; NONCE_LEN],
    /// Length of the header in bytes.
    pub len: usize,
}

/// Reads the header of `bytes` without decrypting.
pub fn parse_header(bytes: &[u8]) -> Result<Header, EnvelopeError> {
    if bytes.len() < 6 || &bytes[..4] != MAGIC {
        return Err(EnvelopeError::Malformed("bad magic"));
    }
    let version = bytes[4];
    if version != ENVELOPE_VERSION {
        return Err(EnvelopeError::Version(version));
    }
    let id_len = bytes[5] as usize;
    let end = 6 + id_len + NONCE_LEN;
    if bytes.len() < end + TAG_LEN {
        return Err(EnvelopeError::Malformed("too short"));
    }
    let key_id = std::str::from_utf8(&bytes[6..6 + id_len])
        .map_err(|_| EnvelopeError::Malformed("key id is not UTF-8"))?
        .to_string();
    let nonce = bytes[6 + id_len..end].try_into().expect("nonce length");
    Ok(Header {
        version,
        key_id,
        nonce,
        len: end,
    })
}

fn aad(header: &[u8], context: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(header.len() + context.len() + 2);
    a.extend_from_slice(header);
    a.extend_from_slice(&(context.len() as u16).to_be_bytes());
    a.extend_from_slice(context);
    a
}

/// Encrypts `plaintext` under `key`, naming `key_id` in the header and binding `context`.
pub fn seal(key: &SymmetricKey, key_id: &str, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
    seal_parts(key, key_id, context, &[plaintext])
}

/// [`seal`] of the concatenation of `parts`, without first joining them: the parts are copied
/// once, into the envelope, and encrypted there in place.
pub fn seal_parts(key: &SymmetricKey, key_id: &str, context: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new().fill(&mut nonce).expect("OS random");
    seal_parts_with_nonce(key, key_id, context, parts, nonce)
}

fn seal_parts_with_nonce(key: &SymmetricKey, key_id: &str, context: &[u8], parts: &[&[u8]], nonce: [u8; NONCE_LEN]) -> Vec<u8> {
    assert!(key_id.len() <= 255, "key id too long");
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(6 + key_id.len() + NONCE_LEN + len + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.push(ENVELOPE_VERSION);
    out.push(key_id.len() as u8);
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(&nonce);
    let header_len = out.len();
    for p in parts {
        out.extend_from_slice(p);
    }
    let cipher = Aes256Gcm::new_from_slice(&key.0).expect("32-byte key");
    let a = aad(&out[..header_len], context);
    let tag = cipher
        .encrypt_inout_detached(&Nonce::from(nonce), &a, out[header_len..].as_mut().into())
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    out.extend_from_slice(&tag);
    out
}

/// Decrypts an envelope whose header was parsed by [`parse_header`].
pub fn open(key: &SymmetricKey, header: &Header, bytes: &[u8], context: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let cipher = Aes256Gcm::new_from_slice(&key.0).expect("32-byte key");
    let a = aad(&bytes[..header.len], context);
    cipher
        .decrypt(
            &Nonce::from(header.nonce),
            Payload {
                msg: &bytes[header.len..],
                aad: &a,
            },
        )
        .map_err(|_| EnvelopeError::Authentication)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let k = SymmetricKey::generate();
        let env = seal(&k, "day:2026-12-03", b"ctx", b"hello");
        let h = parse_header(&env).unwrap();
        assert_eq!(h.key_id, "day:2026-12-03");
        assert_eq!(open(&k, &h, &env, b"ctx").unwrap(), b"hello");
        assert_eq!(open(&k, &h, &env, b"other"), Err(EnvelopeError::Authentication));
        assert_eq!(
            open(&SymmetricKey::generate(), &h, &env, b"ctx"),
            Err(EnvelopeError::Authentication)
        );
    }

    #[test]
    fn sealing_in_parts_is_byte_for_byte_sealing_the_whole() {
        let k = SymmetricKey::generate();
        let nonce = [7u8; NONCE_LEN];
        let (a, b) = (b"metadata".as_slice(), vec![0xA5u8; 5000]);
        let parts = seal_parts_with_nonce(&k, "day:2026-12-03", b"ctx", &[a, &b], nonce);
        // The envelope as the one-shot AEAD call builds it: header, then ciphertext ‖ tag.
        let whole = [a, &b].concat();
        let header_len = 6 + "day:2026-12-03".len() + NONCE_LEN;
        let cipher = Aes256Gcm::new_from_slice(&k.0).unwrap();
        let ct = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &whole,
                    aad: &aad(&parts[..header_len], b"ctx"),
                },
            )
            .unwrap();
        assert_eq!(&parts[header_len..], &ct[..]);
        let h = parse_header(&parts).unwrap();
        assert_eq!(open(&k, &h, &parts, b"ctx").unwrap(), whole);
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let k = SymmetricKey::generate();
        let env = seal(&k, "day:2026-12-03", b"ctx", b"some plaintext");
        for i in 0..env.len() {
            let mut bad = env.clone();
            bad[i] ^= 0x01;
            let res = parse_header(&bad).and_then(|h| open(&k, &h, &bad, b"ctx"));
            assert!(res.is_err(), "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn key_id_in_header_is_authenticated() {
        let k = SymmetricKey::generate();
        let env = seal(&k, "day:2026-12-03", b"ctx", b"x");
        let mut bad = env.clone();
        bad[6 + 13] = b'4'; // day:2026-12-03 -> day:2026-12-04
        let h = parse_header(&bad).unwrap();
        assert_eq!(h.key_id, "day:2026-12-04");
        assert_eq!(open(&k, &h, &bad, b"ctx"), Err(EnvelopeError::Authentication));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_header(b"").is_err());
        assert!(parse_header(b"LETH\x01\x05ab").is_err());
        assert_eq!(
            parse_header(b"LETH\x09\x00aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            Err(EnvelopeError::Version(9))
        );
    }

    #[test]
    fn a_million_nonces_under_one_key_never_repeat() {
        let k = SymmetricKey::generate();
        let n = 1_000_000;
        let mut seen = std::collections::HashSet::with_capacity(n);
        for _ in 0..n {
            let env = seal(&k, "day:2026-12-03", b"ctx", b"read");
            let h = parse_header(&env).unwrap();
            assert!(seen.insert(h.nonce), "nonce repeated after {} encryptions", seen.len());
        }
        assert_eq!(seen.len(), n);
    }

    #[test]
    fn the_same_plaintext_twice_gives_different_ciphertexts() {
        let k = SymmetricKey::generate();
        let a = seal(&k, "day:2026-12-03", b"ctx", b"the same read");
        let b = seal(&k, "day:2026-12-03", b"ctx", b"the same read");
        assert_ne!(a, b);
        assert_ne!(a[a.len() - 30..], b[b.len() - 30..]);
    }
}
