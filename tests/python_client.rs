//! A client in another language, written from the proto contract alone: Python stubs generated
//! by grpcio-tools ingest (unary and streaming) and search against a server on 127.0.0.1:0.
//!
//! grpcio-tools is installed into a virtualenv under the cargo target directory if missing.

mod api_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use api_support::*;

fn target_dir() -> PathBuf {
    // …/target/debug/deps/python_client-HASH → …/target
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A Python with grpcio and grpcio-tools.
fn python() -> PathBuf {
    let venv = target_dir().join("pyenv-grpc");
    let py = venv.join("bin/python");
    let ok = py.exists()
        && Command::new(&py)
            .args(["-c", "import grpc, grpc_tools"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run(Command::new(&py).args(["-m", "pip", "install", "--quiet", "grpcio-tools"]));
    }
    py
}

#[tokio::test]
async fn python_client_ingests_and_searches() {
    let py = python();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let gen = tempfile::tempdir().unwrap();
    run(Command::new(&py)
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(manifest.join("proto"))
        .arg(format!("--python_out={}", gen.path().display()))
        .arg(format!("--grpc_python_out={}", gen.path().display()))
        .arg(manifest.join("proto/lethe/v1/lethe.proto")));

    let h = Harness::start().await;
    let script = manifest.join("tests/python/client.py");
    let (py2, addr, now) = (py.clone(), h.addr.to_string(), t0().timestamp().to_string());
    let tokens = [
        h.token("ingest-gateway").to_string(),
        h.token("city-pd").to_string(),
        h.token("nv-city-pd").to_string(),
    ];
    let gen_path = gen.path().to_path_buf();
    let stdout = tokio::task::spawn_blocking(move || {
        run(Command::new(&py2)
            .arg(&script)
            .args([&addr, &now])
            .args(&tokens)
            .env("PYTHONPATH", &gen_path))
    })
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();

    assert_eq!(v["unary"]["batch_id"], 7);
    assert_eq!(v["unary"]["stored"], 2);
    assert_eq!(v["unary"]["rejected"], 1);
    assert_eq!(v["unary"]["rejected_field"][0], "plate");
    assert_eq!(
        v["stream"],
        serde_json::json!([{"batch_id": 1, "stored": 1, "duplicates": 0}, {"batch_id": 2, "stored": 1, "duplicates": 1}])
    );
    let results = v["search"]["results"].as_array().unwrap();
    let got: Vec<(&str, bool)> = results
        .iter()
        .map(|r| (r["read_id"].as_str().unwrap(), r["exact"].as_bool().unwrap()))
        .collect();
    assert_eq!(got, [("py-1", true), ("py-2", true), ("py-3", true), ("py-4", false)]);
    assert_eq!(v["search"]["count"], 4);
    assert!(results.iter().all(|r| r["image"] == 102));
    assert_eq!(v["denied"]["code"], "PERMISSION_DENIED");
    assert!(v["denied"]["details"].as_str().unwrap().contains("forbid-search-out-of-state"));
    assert_eq!(v["unauthenticated"], "UNAUTHENTICATED");
    h.stop().await;
}
