//! The blind index: which bucket a plate's reads are filed under.
//!
//! bucket = HMAC-SHA256(blind key, folded plate), truncated to `bits` bits. The blind key is
//! derived from the day key, so a day's buckets are shredded with it. Truncation makes buckets mix
//! many vehicles (CipherSweet's planning rule): the store learns "these reads share a bucket", not
//! "these reads are the same vehicle". The folded form is used so that an exact plate and its OCR
//! look-alikes land in the same bucket; candidates are decrypted and matched exactly.

use super::envelope::SymmetricKey;

/// The smallest and largest bucket sizes accepted, in bits.
pub const BITS_RANGE: std::ops::RangeInclusive<u8> = 4..=24;

/// Computes the bucket of a folded plate: a hex string of `ceil(bits/4)` characters.
pub fn bucket(blind_key: &SymmetricKey, folded_plate: &str, bits: u8) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, blind_key.expose());
    let tag = ring::hmac::sign(&k, folded_plate.as_bytes());
    let t = tag.as_ref();
    let v = u32::from_be_bytes([t[0], t[1], t[2], t[3]]) >> (32 - u32::from(bits));
    let width = usize::from(bits).div_ceil(4);
    format!("{v:0width$x}")
}

/// A full-width (untruncated) blind value for audit records: HMAC-SHA256(key, canonical plate).
pub fn full_blind(key: &SymmetricKey, canonical_plate: &str) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.expose());
    hex::encode(ring::hmac::sign(&k, canonical_plate.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_have_the_configured_width_and_spread() {
        let k = SymmetricKey::generate();
        for bits in BITS_RANGE {
            let b = bucket(&k, "ABC1234", bits);
            assert_eq!(b.len(), usize::from(bits).div_ceil(4));
            assert!(u32::from_str_radix(&b, 16).unwrap() < (1 << bits));
        }
        let mut seen = std::collections::HashSet::new();
        for i in 0..2000 {
            seen.insert(bucket(&k, &format!("P{i}"), 8));
        }
        assert!(seen.len() > 200, "2000 plates hit only {} of 256 buckets", seen.len());
    }
}
