//! Known-answer tests for the Merkle tree against public vectors:
//! - the RFC 6962 reference leaves and roots (certificate-transparency / transparency-dev
//!   `testonly` constants), and
//! - transparency-dev/merkle `testdata/` inclusion and consistency vectors, copied verbatim into
//!   `tests/vectors/transparency-dev-merkle/` (source and commits in `SOURCE.md` there).

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use lethe::ledger::merkle::{self, Hash};

const ENTRIES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn leaves() -> Vec<Hash> {
    ENTRIES.iter().map(|e| merkle::leaf_hash(&hex::decode(e).unwrap())).collect()
}

#[test]
fn rfc6962_reference_roots() {
    let l = leaves();
    for (n, want) in ROOTS.iter().enumerate() {
        assert_eq!(hex::encode(merkle::root_of(&l[..n])), *want, "size {n}");
    }
}

fn vector_files(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/transparency-dev-merkle")
        .join(kind);
    let mut out = Vec::new();
    for d in std::fs::read_dir(dir).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    assert!(!out.is_empty());
    out
}

/// Decodes a base64 hash; a value that is not 32 bytes makes the vector fail (as it must).
fn h(v: &serde_json::Value) -> Option<Hash> {
    B64.decode(v.as_str()?).ok()?.try_into().ok()
}

fn proof(v: &serde_json::Value) -> Option<Vec<Hash>> {
    match v {
        serde_json::Value::Null => Some(vec![]),
        serde_json::Value::Array(a) => a.iter().map(h).collect(),
        _ => None,
    }
}

#[test]
fn transparency_dev_inclusion_vectors() {
    let l = leaves();
    for f in vector_files("inclusion") {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let idx = v["leafIdx"].as_u64().unwrap();
        let size = v["treeSize"].as_u64().unwrap();
        let want_err = v["wantErr"].as_bool().unwrap();
        let res = match (h(&v["leafHash"]), h(&v["root"]), proof(&v["proof"])) {
            (Some(leaf), Some(root), Some(p)) => merkle::verify_inclusion(idx, size, &leaf, &p, &root).is_ok(),
            _ => false,
        };
        assert_eq!(res, !want_err, "{}", f.display());
        if !want_err {
            // Our generator produces exactly the published proof.
            let ours = merkle::inclusion_proof(&l[..size as usize], idx).unwrap();
            assert_eq!(Some(ours), proof(&v["proof"]), "{}", f.display());
        }
    }
}

#[test]
fn transparency_dev_consistency_vectors() {
    let l = leaves();
    for f in vector_files("consistency") {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let s1 = v["size1"].as_u64().unwrap();
        let s2 = v["size2"].as_u64().unwrap();
        let want_err = v["wantErr"].as_bool().unwrap();
        let res = match (h(&v["root1"]), h(&v["root2"]), proof(&v["proof"])) {
            (Some(r1), Some(r2), Some(p)) => merkle::verify_consistency(s1, s2, &r1, &r2, &p).is_ok(),
            _ => false,
        };
        assert_eq!(res, !want_err, "{}", f.display());
        if !want_err {
            let ours = merkle::consistency_proof(&l[..s2 as usize], s1).unwrap();
            assert_eq!(Some(ours), proof(&v["proof"]), "{}", f.display());
        }
    }
}
