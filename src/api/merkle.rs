//! The Merkle root of an ingest batch (RFC 6962 tree hash: leaf prefix 0x00, node prefix 0x01).
//!
//! A leaf is `object key ‖ 0x00 ‖ SHA-256 of the ciphertext`, and leaves are sorted, so the root
//! depends only on which objects with which bytes the batch stored, not on the order they were
//! sent in. A deletion proof can recompute it from the day's listing.

use super::sha256;

/// The leaf of one stored object.
pub fn leaf(object_key: &str, ciphertext_sha256: &[u8; 32]) -> Vec<u8> {
    let mut v = Vec::with_capacity(object_key.len() + 33);
    v.extend_from_slice(object_key.as_bytes());
    v.push(0);
    v.extend_from_slice(ciphertext_sha256);
    v
}

/// RFC 6962 Merkle tree hash of `leaves` (in the given order). The empty tree hashes to SHA-256("").
pub fn root(leaves: &[Vec<u8>]) -> [u8; 32] {
    match leaves.len() {
        0 => sha256(b""),
        1 => {
            let mut v = Vec::with_capacity(leaves[0].len() + 1);
            v.push(0);
            v.extend_from_slice(&leaves[0]);
            sha256(&v)
        }
        n => {
            // The largest power of two strictly less than n.
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            let mut v = Vec::with_capacity(65);
            v.push(1);
            v.extend_from_slice(&root(&leaves[..k]));
            v.extend_from_slice(&root(&leaves[k..]));
            sha256(&v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers from the RFC 6962 test vectors (certificate-transparency-go merkletree tests).
    #[test]
    fn rfc6962_known_answers() {
        let leaves: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x00],
            vec![0x10],
            vec![0x20, 0x21],
            vec![0x30, 0x31],
            vec![0x40, 0x41, 0x42, 0x43],
            vec![0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            vec![
                0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f,
            ],
        ];
        assert_eq!(
            hex::encode(root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex::encode(root(&leaves[..1])),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(
            hex::encode(root(&leaves[..2])),
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"
        );
        assert_eq!(
            hex::encode(root(&leaves[..3])),
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"
        );
        assert_eq!(
            hex::encode(root(&leaves[..8])),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
    }
}
