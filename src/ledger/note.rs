//! Signed checkpoints in the C2SP `signed-note` / `tlog-checkpoint` formats, signed with Ed25519.
//!
//! A checkpoint is the note text
//!
//! ```text
//! <origin>\n<tree size, decimal>\n<base64 root hash>\n
//! ```
//!
//! followed by a blank line and one or more signature lines
//! `— <key name> <base64(4-byte key hash || 64-byte Ed25519 signature)>\n`. The key hash is
//! SHA-256(name || "\n" || 0x01 || public key)[..4]. The verifier key (public, for auditors) is
//! the string `<name>+<8 hex digits of key hash>+<base64(0x01 || public key)>`.
//!
//! Parsing reads untrusted bytes and is strict: UTF-8, no carriage returns, no extension lines,
//! canonical decimal and base64, a bounded size and number of signatures. Signatures by other
//! keys are ignored (as the signed-note spec requires), but at least one must be by the
//! verifier's key, and a line carrying the verifier's name and key hash must verify.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};

use super::merkle::Hash;
use super::LedgerError;
use crate::secret_file;

/// Signature algorithm byte for Ed25519 in signed-note key hashes and verifier keys.
const ALG_ED25519: u8 = 0x01;
/// Largest note accepted from the store (a checkpoint is ~200 bytes).
const MAX_NOTE_BYTES: usize = 64 * 1024;
/// Most signature lines accepted.
const MAX_SIGNATURES: usize = 100;
/// The em dash that opens a signature line.
const SIG_PREFIX: &str = "\u{2014} ";

/// Why a note or key did not parse or verify. Kept free of I/O so the verifier can report it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The text is not a well-formed checkpoint note.
    #[error("malformed checkpoint: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// No signature by the verifier's key.
    #[error("checkpoint has no signature by key {key_name}")]
    Unsigned {
        /// The verifier key's name.
        key_name: String,
    },
    /// A signature line names the verifier's key but does not verify.
    #[error("checkpoint signature by key {key_name} does not verify")]
    BadSignature {
        /// The verifier key's name.
        key_name: String,
    },
    /// The checkpoint's origin is not the log's.
    #[error("checkpoint origin {got:?} is not the log's origin {want:?}")]
    WrongOrigin {
        /// Origin line found.
        got: String,
        /// Origin expected (the verifier key's name).
        want: String,
    },
    /// A verifier key string is malformed.
    #[error("malformed verifier key: {reason}")]
    BadKey {
        /// What is wrong.
        reason: String,
    },
}

fn malformed(reason: impl Into<String>) -> NoteError {
    NoteError::Malformed { reason: reason.into() }
}

fn key_hash(name: &str, public_key: &[u8]) -> [u8; 4] {
    let mut c = ring::digest::Context::new(&ring::digest::SHA256);
    c.update(name.as_bytes());
    c.update(b"\n");
    c.update(&[ALG_ED25519]);
    c.update(public_key);
    let d = c.finish();
    let mut out = [0u8; 4];
    out.copy_from_slice(&d.as_ref()[..4]);
    out
}

fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// The log's checkpoint signing key (Ed25519). Secret: lives in a 0600 file outside the store.
pub struct SigningKey {
    name: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("name", &self.name).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh key in memory (tests, benchmarks).
    pub fn generate(name: &str) -> Result<Self, LedgerError> {
        let pkcs8 = generate_pkcs8()?;
        Self::from_pkcs8(name, &pkcs8)
    }

    /// Loads the key from a PKCS#8 document.
    pub fn from_pkcs8(name: &str, pkcs8: &[u8]) -> Result<Self, LedgerError> {
        if !valid_key_name(name) {
            return Err(LedgerError::Key {
                reason: format!("invalid key name {name:?}"),
            });
        }
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8))
            .map_err(|e| LedgerError::Key {
                reason: format!("not an Ed25519 PKCS#8 key: {e}"),
            })?;
        Ok(Self {
            name: name.to_owned(),
            pair,
        })
    }

    /// Reads the PKCS#8 key file at `path`, creating it (mode 0600) on first use. `name` is the
    /// key name, which is also the log's origin line. Returns the key and whether it was created.
    pub fn load_or_create(path: &Path, name: &str) -> Result<(Self, bool), LedgerError> {
        let mut gen_err = None;
        let (bytes, created) = secret_file::read_or_create_secret(path, "ledger signing key", || {
            generate_pkcs8().unwrap_or_else(|e| {
                gen_err = Some(e);
                Vec::new()
            })
        })?;
        if let Some(e) = gen_err {
            return Err(e);
        }
        Ok((Self::from_pkcs8(name, &bytes)?, created))
    }

    /// The key name (and origin line).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public verifier key for auditors.
    pub fn verifier(&self) -> VerifierKey {
        let mut pk = [0u8; 32];
        pk.copy_from_slice(self.pair.public_key().as_ref());
        VerifierKey {
            name: self.name.clone(),
            hash: key_hash(&self.name, &pk),
            public_key: pk,
        }
    }

    /// Signs a checkpoint for (`size`, `root`) with origin = key name; returns the note text.
    pub fn sign_checkpoint(&self, size: u64, root: &Hash) -> String {
        let body = Checkpoint {
            origin: self.name.clone(),
            size,
            root: *root,
        }
        .body();
        let sig = self.pair.sign(body.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&key_hash(&self.name, self.pair.public_key().as_ref()));
        blob.extend_from_slice(sig.as_ref());
        format!("{body}\n{SIG_PREFIX}{} {}\n", self.name, B64.encode(blob))
    }
}

fn generate_pkcs8() -> Result<Vec<u8>, LedgerError> {
    Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map(|d| d.as_ref().to_vec())
        .map_err(|e| LedgerError::Key {
            reason: format!("cannot generate key: {e}"),
        })
}

/// The public key that checks checkpoint signatures; what an auditor is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    hash: [u8; 4],
    public_key: [u8; 32],
}

impl VerifierKey {
    /// Parses `<name>+<hex key hash>+<base64(0x01 || public key)>`.
    pub fn parse(s: &str) -> Result<Self, NoteError> {
        let bad = |r: &str| NoteError::BadKey { reason: r.to_owned() };
        let s = s.trim_end_matches('\n');
        let mut parts = s.splitn(3, '+');
        let (name, hash_hex, key_b64) = match (parts.next(), parts.next(), parts.next()) {
            (Some(n), Some(h), Some(k)) => (n, h, k),
            _ => return Err(bad("expected name+hash+key")),
        };
        if !valid_key_name(name) {
            return Err(bad("invalid key name"));
        }
        if hash_hex.len() != 8 || !hash_hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(bad("key hash must be 8 lowercase hex digits"));
        }
        let key = B64.decode(key_b64).map_err(|_| bad("key is not base64"))?;
        if key.len() != 33 || key[0] != ALG_ED25519 {
            return Err(bad("key is not an Ed25519 key (0x01 || 32 bytes)"));
        }
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(&key[1..]);
        let hash = key_hash(name, &public_key);
        if hex::encode(hash) != hash_hex {
            return Err(bad("key hash does not match name and key"));
        }
        Ok(Self {
            name: name.to_owned(),
            hash,
            public_key,
        })
    }

    /// The key name, which is also the log's origin.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Parses a signed checkpoint and checks its signature by this key and its origin.
    pub fn verify_checkpoint(&self, text: &[u8]) -> Result<Checkpoint, NoteError> {
        let (body, sigs) = split_note(text)?;
        let cp = Checkpoint::parse_body(body)?;
        if cp.origin != self.name {
            return Err(NoteError::WrongOrigin {
                got: cp.origin,
                want: self.name.clone(),
            });
        }
        let pk = UnparsedPublicKey::new(&ED25519, &self.public_key);
        let mut verified = false;
        for (name, blob) in sigs {
            if name != self.name || blob.len() < 4 || blob[..4] != self.hash {
                continue;
            }
            if blob.len() != 68 || pk.verify(body.as_bytes(), &blob[4..]).is_err() {
                return Err(NoteError::BadSignature {
                    key_name: self.name.clone(),
                });
            }
            verified = true;
        }
        if verified {
            Ok(cp)
        } else {
            Err(NoteError::Unsigned {
                key_name: self.name.clone(),
            })
        }
    }
}

impl std::fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut key = vec![ALG_ED25519];
        key.extend_from_slice(&self.public_key);
        write!(f, "{}+{}+{}", self.name, hex::encode(self.hash), B64.encode(key))
    }
}

/// A signature line: key name and decoded blob.
type SigLine<'a> = (&'a str, Vec<u8>);

/// Splits note text into its body (with trailing newline) and parsed signature lines.
fn split_note(text: &[u8]) -> Result<(&str, Vec<SigLine<'_>>), NoteError> {
    if text.len() > MAX_NOTE_BYTES {
        return Err(malformed("note too large"));
    }
    let text = std::str::from_utf8(text).map_err(|_| malformed("not UTF-8"))?;
    if text.contains('\r') {
        return Err(malformed("carriage return in note"));
    }
    if !text.ends_with('\n') {
        return Err(malformed("note does not end with a newline"));
    }
    let split = text.rfind("\n\n").ok_or_else(|| malformed("no blank line before signatures"))?;
    let (body, sig_text) = (&text[..=split], &text[split + 2..]);
    let mut sigs = Vec::new();
    for line in sig_text.strip_suffix('\n').unwrap_or(sig_text).split('\n') {
        if sigs.len() == MAX_SIGNATURES {
            return Err(malformed("too many signatures"));
        }
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or_else(|| malformed("signature line does not start with '— '"))?;
        let (name, b64) = rest.split_once(' ').ok_or_else(|| malformed("signature line has no space"))?;
        if !valid_key_name(name) {
            return Err(malformed("invalid signature key name"));
        }
        let blob = B64.decode(b64).map_err(|_| malformed("signature is not base64"))?;
        if blob.len() < 5 {
            return Err(malformed("signature too short"));
        }
        sigs.push((name, blob));
    }
    if sigs.is_empty() {
        return Err(malformed("no signature lines"));
    }
    Ok((body, sigs))
}

/// A checkpoint: the log's origin, its size and the Merkle root over its first `size` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (the signing key's name).
    pub origin: String,
    /// Number of entries covered.
    pub size: u64,
    /// RFC 6962 root of entries `0..size`.
    pub root: Hash,
}

impl Checkpoint {
    /// The note body this checkpoint signs.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root))
    }

    fn parse_body(body: &str) -> Result<Self, NoteError> {
        let lines: Vec<&str> = body.strip_suffix('\n').unwrap_or(body).split('\n').collect();
        if lines.len() != 3 {
            return Err(malformed(format!("body has {} lines, 3 expected (no extensions)", lines.len())));
        }
        let origin = lines[0];
        if origin.is_empty() || origin.chars().any(char::is_control) {
            return Err(malformed("invalid origin line"));
        }
        let size_s = lines[1];
        if size_s.is_empty() || !size_s.bytes().all(|b| b.is_ascii_digit()) || (size_s.len() > 1 && size_s.starts_with('0')) {
            return Err(malformed("tree size is not a canonical decimal"));
        }
        let size: u64 = size_s.parse().map_err(|_| malformed("tree size out of range"))?;
        let root_v = B64.decode(lines[2]).map_err(|_| malformed("root is not base64"))?;
        let root: Hash = root_v.try_into().map_err(|_| malformed("root is not 32 bytes"))?;
        if B64.encode(root) != lines[2] {
            return Err(malformed("root is not canonical base64"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_round_trip() {
        let k = SigningKey::generate("lethe.example/ledger").unwrap();
        let vk = VerifierKey::parse(&k.verifier().to_string()).unwrap();
        assert_eq!(vk, k.verifier());
        let note = k.sign_checkpoint(42, &[7u8; 32]);
        let cp = vk.verify_checkpoint(note.as_bytes()).unwrap();
        assert_eq!((cp.size, cp.root), (42, [7u8; 32]));
        // Any single-byte change is rejected.
        for i in 0..note.len() {
            let mut b = note.clone().into_bytes();
            b[i] ^= 0x01;
            assert!(vk.verify_checkpoint(&b).is_err(), "byte {i}");
        }
    }

    #[test]
    fn other_key_is_rejected() {
        let k = SigningKey::generate("log").unwrap();
        let other = SigningKey::generate("log").unwrap();
        let note = other.sign_checkpoint(1, &[0u8; 32]);
        assert_eq!(
            k.verifier().verify_checkpoint(note.as_bytes()),
            Err(NoteError::Unsigned { key_name: "log".into() })
        );
    }

    #[test]
    fn known_signed_note_key_hash() {
        // C2SP signed-note example: the key hash of "PeterNeumann" with this key is c74f20a3.
        let vk = VerifierKey::parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW");
        assert!(vk.is_ok(), "{vk:?}");
    }
}
