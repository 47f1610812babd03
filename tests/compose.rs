//! docker-compose.yml cannot run here (no Docker engine), so it is checked against the CLI and the
//! configuration: every lethe command it runs exists with the flags it passes, every environment
//! variable it sets is one lethe reads, every file it mounts or builds from exists.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_norway::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let mut v: Value = serde_norway::from_str(&text).unwrap();
    v.apply_merge().unwrap();
    v
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(s) => s.iter().flat_map(strings).collect(),
        _ => vec![],
    }
}

/// The lethe invocations in a service's command (`lethe serve --listen …`, or inside `sh -c`).
fn lethe_invocations(service: &Value) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let cmd = strings(&service["command"]);
    if cmd.first().map(String::as_str) == Some("lethe") {
        out.push(cmd[1..].to_vec());
    }
    for line in cmd {
        for part in line.split(&[';', '&', '|'][..]) {
            let words: Vec<&str> = part.split_whitespace().collect();
            if let Some(i) = words.iter().position(|w| *w == "lethe") {
                if words.len() > i + 1 && !words[i + 1].starts_with('"') {
                    out.push(words[i + 1..].iter().map(|s| s.to_string()).collect());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn services_are_all_there() {
    let c = compose();
    let services = c["services"].as_mapping().unwrap();
    for s in ["minio", "minio-init", "lethe", "sweeper", "audit", "lethe-init"] {
        assert!(services.contains_key(Value::String(s.into())), "service {s} missing");
    }
    assert!(
        strings(&c["services"]["sweeper"]["command"]).join(" ").contains("sleep 3600"),
        "sweeper must run hourly"
    );
    assert!(
        strings(&c["services"]["audit"]["command"]).join(" ").contains("sleep 86400"),
        "audit must run daily"
    );
}

#[test]
fn every_lethe_command_and_flag_exists() {
    let c = compose();
    let mut seen = BTreeSet::new();
    for (name, svc) in c["services"].as_mapping().unwrap() {
        for inv in lethe_invocations(svc) {
            let sub = inv[0].clone();
            let out = Command::new(env!("CARGO_BIN_EXE_lethe")).args([&sub, "--help"]).output().unwrap();
            assert!(out.status.success(), "{name:?}: `lethe {sub}` is not a command");
            let help = String::from_utf8_lossy(&out.stdout);
            for flag in inv.iter().filter(|w| w.starts_with("--")) {
                assert!(help.contains(flag.as_str()), "{name:?}: `lethe {sub}` has no flag {flag}");
            }
            seen.insert(sub);
        }
    }
    for sub in ["serve", "sweep", "audit", "init"] {
        assert!(seen.contains(sub), "compose never runs lethe {sub}");
    }
}

#[test]
fn every_environment_variable_is_one_lethe_reads() {
    let c = compose();
    for (name, svc) in c["services"].as_mapping().unwrap() {
        let image = svc["image"].as_str().unwrap_or("");
        if !image.starts_with("lethe") {
            continue;
        }
        let env = svc["environment"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{name:?} has no environment"));
        for (k, _) in env {
            let k = k.as_str().unwrap();
            assert!(
                lethe::config::ENV_VARS.contains(&k) || lethe::config::AWS_CREDENTIAL_VARS.contains(&k),
                "{name:?} sets {k}, which lethe does not read"
            );
        }
        // and the configuration those variables make is valid
        let mut cfg = lethe::config::Config::default();
        cfg.apply_env(|k| env.get(Value::String(k.into())).and_then(|v| v.as_str()).map(|s| s.to_string()))
            .unwrap();
        cfg.validate().unwrap_or_else(|e| panic!("{name:?}: {e}"));
        assert_eq!(cfg.store.kind, lethe::config::StoreKind::S3);
    }
}

#[test]
fn every_mounted_and_built_file_exists() {
    let c = compose();
    for (name, svc) in c["services"].as_mapping().unwrap() {
        for vol in strings(&svc["volumes"]) {
            let host = vol.split(':').next().unwrap();
            if host == "./lethe-keys" {
                continue; // created by the operator (see the header of docker-compose.yml)
            }
            if host.starts_with("./") {
                assert!(root().join(host).exists(), "{name:?} mounts {host}, which does not exist");
            }
        }
        if svc["build"].as_str().is_some() {
            assert!(root().join("Dockerfile").exists());
        }
    }
    assert!(root().join("policies/retention.toml").exists());
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        for src in &words[1..words.len() - 1] {
            assert!(root().join(src).exists(), "Dockerfile copies {src}, which does not exist");
        }
    }
}
