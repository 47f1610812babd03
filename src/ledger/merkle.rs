//! RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs.
//!
//! Leaf hash = SHA-256(0x00 || data), interior node = SHA-256(0x01 || left || right), the empty
//! tree hashes to SHA-256(""). Changing any of these breaks every stored checkpoint.
//!
//! Written here (about 250 lines over `ring`'s SHA-256) rather than taken from `ct-merkle`,
//! `signed_note` or `tlog_tiles`: `ct-merkle` keeps every leaf in memory and brings the RustCrypto
//! `digest` stack alongside `ring`; `tlog_tiles`/`signed_note` assume the tile layout and pull in
//! their own crypto crates. The log needs only a streaming compact range ([`CompactTree`], O(log n)
//! memory) for writing and verifying, plus proof generation over leaf hashes; the algorithms are
//! the RFC's own, checked against the transparency-dev test vectors in `tests/vectors/`.

use ring::digest::{Context, SHA256};

/// A SHA-256 hash: a leaf hash, node hash or tree root.
pub type Hash = [u8; 32];

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The index or sizes given are impossible (index beyond the tree, old size beyond new).
    #[error("invalid proof request: {reason}")]
    Invalid {
        /// What is wrong.
        reason: &'static str,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("proof has {got} hashes, {want} expected")]
    WrongLength {
        /// Hashes in the proof.
        got: usize,
        /// Hashes the sizes require.
        want: usize,
    },
    /// The proof does not lead to the expected root.
    #[error("proof does not match the root")]
    RootMismatch,
}

/// SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut c = Context::new(&SHA256);
    c.update(&[0x00]);
    c.update(data);
    to_hash(c)
}

/// SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut c = Context::new(&SHA256);
    c.update(&[0x01]);
    c.update(left);
    c.update(right);
    to_hash(c)
}

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    to_hash(Context::new(&SHA256))
}

fn to_hash(c: Context) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(c.finish().as_ref());
    out
}

/// The largest power of two strictly less than `n` (n > 1).
fn split_point(n: usize) -> usize {
    debug_assert!(n > 1);
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH(D[n]) over leaf hashes (RFC 6962 §2.1).
pub fn root_of(leaves: &[Hash]) -> Hash {
    let mut t = CompactTree::new();
    for l in leaves {
        t.push(*l);
    }
    t.root()
}

/// The audit path for leaf `index` in the tree of `leaves` (RFC 6962 §2.1.1, PATH(m, D[n])).
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    let index = usize::try_from(index).map_err(|_| ProofError::Invalid { reason: "index too large" })?;
    if index >= leaves.len() {
        return Err(ProofError::Invalid {
            reason: "leaf index beyond tree size",
        });
    }
    let mut out = Vec::new();
    path(index, leaves, &mut out);
    Ok(out)
}

fn path(m: usize, d: &[Hash], out: &mut Vec<Hash>) {
    let n = d.len();
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if m < k {
        path(m, &d[..k], out);
        out.push(root_of(&d[k..]));
    } else {
        path(m - k, &d[k..], out);
        out.push(root_of(&d[..k]));
    }
}

/// The consistency proof from the tree of the first `old_size` leaves to the tree of all
/// `leaves` (RFC 6962 §2.1.2, PROOF(m, D[n])). Empty when `old_size` is 0 or the full size.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>, ProofError> {
    let m = usize::try_from(old_size).map_err(|_| ProofError::Invalid { reason: "size too large" })?;
    if m > leaves.len() {
        return Err(ProofError::Invalid {
            reason: "old size beyond tree size",
        });
    }
    let mut out = Vec::new();
    if m > 0 && m < leaves.len() {
        subproof(m, leaves, true, &mut out);
    }
    Ok(out)
}

fn subproof(m: usize, d: &[Hash], b: bool, out: &mut Vec<Hash>) {
    let n = d.len();
    if m == n {
        if !b {
            out.push(root_of(d));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        subproof(m, &d[..k], b, out);
        out.push(root_of(&d[k..]));
    } else {
        subproof(m - k, &d[k..], false, out);
        out.push(root_of(&d[..k]));
    }
}

/// Checks that `leaf` is at `index` in the tree of `size` leaves with root `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::Invalid {
            reason: "leaf index beyond tree size",
        });
    }
    let want = inclusion_len(index, size);
    if proof.len() != want {
        return Err(ProofError::WrongLength { got: proof.len(), want });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::WrongLength { got: proof.len(), want });
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength { got: proof.len(), want });
    }
    if &r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Number of hashes in an inclusion proof for `index` in a tree of `size`.
fn inclusion_len(index: u64, size: u64) -> usize {
    // Hashes = bits of the inner part (where index and size-1 differ) + ones of the border part.
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = (index >> inner).count_ones();
    (inner + border) as usize
}

/// Checks that the tree of `size1` leaves with root `root1` is a prefix of the tree of `size2`
/// leaves with root `root2` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(size1: u64, size2: u64, root1: &Hash, root2: &Hash, proof: &[Hash]) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::Invalid {
            reason: "old size beyond new size",
        });
    }
    if size1 == size2 || size1 == 0 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength { got: proof.len(), want: 0 });
        }
        if size1 == size2 && root1 != root2 {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength { got: 0, want: 1 });
    }
    let mut chain: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if size1.is_power_of_two() {
        chain.push(*root1);
    }
    chain.extend_from_slice(proof);
    let (mut f, mut s) = (size1 - 1, size2 - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (chain[0], chain[0]);
    for c in &chain[1..] {
        if s == 0 {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                want: chain.len() - 1,
            });
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            want: proof.len() + 1,
        });
    }
    if &fr != root1 || &sr != root2 {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// A compact range over the leaves `0..size`: the roots of the perfect subtrees that make up the
/// tree, largest first. O(log n) memory; appends a leaf in amortised O(1) hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactTree {
    size: u64,
    /// One hash per set bit of `size`, from the highest bit to the lowest.
    nodes: Vec<Hash>,
}

impl CompactTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a tree from its size and frontier hashes (as stored in a batch object).
    /// Returns `None` when the number of hashes does not match the size.
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Option<Self> {
        (nodes.len() == size.count_ones() as usize).then_some(Self { size, nodes })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The frontier hashes, largest subtree first.
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        // Each trailing one bit of the old size is a subtree of equal height to merge with.
        let mut merges = self.size.trailing_ones();
        while merges > 0 {
            let left = self.nodes.pop().expect("frontier matches size");
            h = node_hash(&left, &h);
            merges -= 1;
        }
        self.nodes.push(h);
        self.size += 1;
    }

    /// The tree root (MTH of all leaves so far).
    pub fn root(&self) -> Hash {
        let mut it = self.nodes.iter().rev();
        match it.next() {
            None => empty_root(),
            Some(last) => it.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&(i as u64).to_be_bytes())).collect()
    }

    fn naive_root(d: &[Hash]) -> Hash {
        match d.len() {
            0 => empty_root(),
            1 => d[0],
            n => {
                let k = split_point(n);
                node_hash(&naive_root(&d[..k]), &naive_root(&d[k..]))
            }
        }
    }

    #[test]
    fn compact_tree_matches_recursive_definition() {
        for n in 0..70 {
            let l = leaves(n);
            assert_eq!(root_of(&l), naive_root(&l), "n={n}");
        }
    }

    #[test]
    fn every_proof_verifies_and_tampered_ones_do_not() {
        for n in 1..40u64 {
            let l = leaves(n as usize);
            let root = root_of(&l);
            for i in 0..n {
                let p = inclusion_proof(&l, i).unwrap();
                verify_inclusion(i, n, &l[i as usize], &p, &root).unwrap();
                if n > 1 {
                    let other = l[((i + 1) % n) as usize];
                    assert!(verify_inclusion(i, n, &other, &p, &root).is_err());
                }
            }
            for m in 0..=n {
                let p = consistency_proof(&l, m).unwrap();
                let old = root_of(&l[..m as usize]);
                verify_consistency(m, n, &old, &root, &p).unwrap();
                if m > 0 && m < n {
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert!(verify_consistency(m, n, &old, &root, &bad).is_err());
                    assert!(verify_consistency(m, n, &root, &old, &p).is_err());
                }
            }
        }
    }
}
