//! Bad configuration fails at start with one readable line naming the setting, and a non-zero exit.

mod common;

use std::process::Command;

fn lethe(dir: &std::path::Path, env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lethe"));
    cmd.arg("init").current_dir(dir).env_remove("LETHE_CONFIG").env("RUST_LOG", "off");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_one_line_naming(code: i32, stderr: &str, setting: &str) {
    assert_ne!(code, 0, "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].contains(setting), "{:?} should name {setting}", lines[0]);
}

#[test]
fn embedded_default_starts_and_creates_a_private_kek() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = lethe(dir.path(), &[]);
    assert_eq!(code, 0, "{err}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("lethe-keys/kek")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn unreadable_kek_file() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = lethe(
        dir.path(),
        &[("LETHE_KEK_FILE", "/nonexistent/kek"), ("LETHE_CREATE_KEYS", "false")],
    );
    assert_one_line_naming(code, &err, "LETHE_KEK_FILE");
    assert!(err.contains("/nonexistent/kek"), "{err}");
}

#[test]
fn kek_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let kek = dir.path().join("kek");
    std::fs::write(&kek, "00".repeat(32)).unwrap();
    std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, err) = lethe(dir.path(), &[("LETHE_KEK_FILE", kek.to_str().unwrap())]);
    assert_one_line_naming(code, &err, "chmod 600");
}

#[test]
fn wrong_kek_fails_at_start_not_with_garbage() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(lethe(dir.path(), &[]).0, 0);
    let other = dir.path().join("other-kek");
    std::fs::write(&other, "11".repeat(32)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, err) = lethe(dir.path(), &[("LETHE_KEK_FILE", other.to_str().unwrap())]);
    assert_one_line_naming(code, &err, "key-encryption key");
}

#[test]
fn s3_without_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = lethe(dir.path(), &[("LETHE_STORE", "s3")]);
    assert_one_line_naming(code, &err, "store.bucket");
}

#[test]
fn unknown_config_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lethe.toml"), "[store]\nbukket = \"x\"\n").unwrap();
    let (code, err) = lethe(dir.path(), &[]);
    assert_one_line_naming(code, &err, "bukket");
}

#[test]
fn unreachable_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = lethe(
        dir.path(),
        &[
            ("LETHE_STORE", "s3"),
            ("LETHE_S3_BUCKET", "b"),
            ("LETHE_S3_ENDPOINT", "http://127.0.0.1:9"),
            ("LETHE_S3_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "x"),
            ("AWS_SECRET_ACCESS_KEY", "y"),
        ],
    );
    assert_one_line_naming(code, &err, "store.endpoint");
}

#[test]
fn real_s3_missing_bucket_and_wrong_credentials() {
    let Some(env) = common::s3_env() else {
        return eprintln!("skipped: LETHE_TEST_S3_ENDPOINT unset");
    };
    let dir = tempfile::tempdir().unwrap();
    let base = [
        ("LETHE_STORE", "s3"),
        ("LETHE_S3_ENDPOINT", env.endpoint.as_str()),
        ("LETHE_S3_ALLOW_HTTP", "true"),
        ("AWS_REGION", env.region.as_str()),
    ];
    let mut missing = base.to_vec();
    missing.extend([
        ("LETHE_S3_BUCKET", "no-such-bucket-lethe"),
        ("AWS_ACCESS_KEY_ID", env.access_key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", env.secret_key.as_str()),
    ]);
    let (code, err) = lethe(dir.path(), &missing);
    assert_one_line_naming(code, &err, "store.bucket");

    let mut wrong = base.to_vec();
    wrong.extend([
        ("LETHE_S3_BUCKET", env.bucket.as_str()),
        ("AWS_ACCESS_KEY_ID", env.access_key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
    ]);
    let (code, err) = lethe(dir.path(), &wrong);
    assert_one_line_naming(code, &err, "AWS_SECRET_ACCESS_KEY");

    let mut good = base.to_vec();
    good.extend([
        ("LETHE_S3_BUCKET", env.bucket.as_str()),
        ("AWS_ACCESS_KEY_ID", env.access_key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", env.secret_key.as_str()),
    ]);
    let (code, err) = lethe(dir.path(), &good);
    assert_eq!(code, 0, "{err}");
}
