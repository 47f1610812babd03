//! The client commands against a real `lethe serve` process: `lethe import` (the sample's pipe
//! format, gzip, and JSON lines) and `lethe search` (text, `--json`, and a refused search).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lethe(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lethe"));
    c.current_dir(dir)
        .env_remove("LETHE_TOKEN")
        .env("LETHE_FSYNC", "false")
        .env("LETHE_POLICIES_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/policies"));
    c
}

/// Starts `lethe serve` on 127.0.0.1:0 in `dir` and reads the bound address from its log.
fn serve(dir: &Path) -> Server {
    let mut child = lethe(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(i) = line.find("listen=") {
            break line[i + 7..].split_whitespace().next().unwrap().trim_matches('"').to_string();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, addr }
}

fn out(c: &mut Command) -> (i32, String, String) {
    let o = c.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn import_and_search_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = serve(d);
    let server = format!("http://{}", s.addr);
    let tokens = std::fs::metadata(d.join("lethe-keys/dev-tokens.json")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(tokens.permissions().mode() & 0o777, 0o600);

    // The sample's format, gzip-compressed, with a bad row and an NA position; rebased to now.
    let sample = "captured_local|timezone|device|location|address|zipcode|plate|region|lat|lon\n\
        10/07/2021 - 16:30:51|America/Los_Angeles|SPD2020621MDC|Plain car|I-5 N|98036|LJT1222|WA|47.8128394|-122.2948006\n\
        10/07/2021 - 16:30:48|America/Los_Angeles|M207541_Deleted_2021-10-21_22 50:42|NA|NA|NA|GVF5830|WA|NA|NA\n\
        not a row\n\
        10/06/2021 - 09:00:00|America/Los_Angeles|SPD2020621MDC|Plain car|I-5 N|98036|LJT1222|WA|47.81|-122.29\n";
    let gz = d.join("sample.csv.gz");
    let mut e = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    e.write_all(sample.as_bytes()).unwrap();
    e.finish().unwrap();
    let (code, stdout, stderr) = out(lethe(d).args([
        "import",
        "sample.csv.gz",
        "--rebase-to-now",
        "--as",
        "ingest-gateway",
        "--server",
        &server,
    ]));
    assert_eq!(code, 3, "some rows unparseable: {stdout}{stderr}");
    assert!(
        stdout.contains("sent 3 · stored 3 · duplicates 0 · rejected 0 · unparseable 1"),
        "{stdout}"
    );
    assert!(stderr.contains("row 4: cannot parse: expected 10 fields, found 1"), "{stderr}");

    // Without rebasing, 2021 is past retention: rejected with the field named, nothing stored.
    let (code, stdout, _) = out(lethe(d).args(["import", "sample.csv.gz", "--as", "ingest-gateway", "--server", &server]));
    assert_eq!(code, 3);
    assert!(stdout.contains("rejected 3"), "{stdout}");
    assert!(
        stdout.contains("captured_at: … … UTC is already past the retention period"),
        "{stdout}"
    );

    // JSON lines, plain; run twice: the second run finds duplicates.
    let now = chrono::Utc::now();
    let jsonl = format!(
        "{{\"read_id\":\"j-1\",\"plate\":\"7abc-123\",\"captured_at\":\"{}\",\"camera_id\":\"gw-cam\",\"lat\":37.8,\"lon\":-122.3}}\n\
         {{\"plate\":\"7ABC123\",\"captured_at\":\"{}\",\"camera_id\":\"gw-cam\",\"extra\":1}}\n",
        (now - chrono::Duration::hours(2)).to_rfc3339(),
        (now - chrono::Duration::hours(1)).to_rfc3339()
    );
    std::fs::write(d.join("reads.jsonl"), jsonl).unwrap();
    let token = {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("lethe-keys/dev-tokens.json")).unwrap()).unwrap();
        v["ingest-gateway"].as_str().unwrap().to_string()
    };
    let (code, stdout, _) = out(lethe(d)
        .args(["import", "reads.jsonl", "--server", &server])
        .env("LETHE_TOKEN", &token));
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("stored 2 · duplicates 0"), "{stdout}");
    let (_, stdout, _) = out(lethe(d)
        .args(["import", "reads.jsonl", "--server", &server])
        .env("LETHE_TOKEN", &token));
    assert!(stdout.contains("stored 0 · duplicates 2"), "{stdout}");

    // A gzip file cut short: refused whole with one line, nothing sent or stored.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for i in 0..3000 {
        writeln!(
            e,
            "{{\"plate\":\"CUT{:04}\",\"captured_at\":\"{}\",\"camera_id\":\"gw-cam\"}}",
            i % 7,
            (now - chrono::Duration::minutes(i)).to_rfc3339()
        )
        .unwrap();
    }
    let whole = e.finish().unwrap();
    std::fs::write(d.join("cut.jsonl.gz"), &whole[..whole.len() * 2 / 3]).unwrap();
    let (code, stdout, stderr) = out(lethe(d)
        .args(["import", "cut.jsonl.gz", "--server", &server])
        .env("LETHE_TOKEN", &token));
    assert_ne!(code, 0, "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("row ") && stderr.contains("cannot read the file") && stderr.contains("nothing was sent"),
        "{stderr}"
    );
    let (code, stdout, _) = out(lethe(d).args([
        "search",
        "CUT0001",
        "--purpose",
        "investigation",
        "--case",
        "C-3",
        "--json",
        "--as",
        "city-pd",
        "--server",
        &server,
    ]));
    assert_eq!((code, stdout.as_str()), (0, ""), "a read of the cut file was stored");

    // A reader that stops early (`| head -1`) does not crash the import.
    let mut child = lethe(d)
        .args(["import", "reads.jsonl", "--server", &server])
        .env("LETHE_TOKEN", &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));

    // Search: one JSON object per result per line.
    let (code, stdout, stderr) = out(lethe(d).args([
        "search",
        "LJT 1222",
        "--purpose",
        "investigation",
        "--case",
        "C-1",
        "--json",
        "--as",
        "city-pd",
        "--server",
        &server,
    ]));
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["plate_canonical"] == "LJT1222" && l["exact"] == true));
    assert!(stderr.contains("access record #"), "{stderr}");
    let (code, stdout, _) = out(lethe(d).args([
        "search",
        "7ABC123",
        "--purpose",
        "stolen-vehicle",
        "--case",
        "C-2",
        "--as",
        "county-so",
        "--server",
        &server,
    ]));
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");

    // A window wholly before the retention period: recorded, nothing returned, said in words.
    let (code, stdout, stderr) = out(lethe(d).args([
        "search",
        "LJT1222",
        "--purpose",
        "investigation",
        "--case",
        "C-1",
        "--from",
        "2020-01-01",
        "--to",
        "2020-01-02",
        "--as",
        "city-pd",
        "--server",
        &server,
    ]));
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
    assert!(
        stderr.contains("window outside the retention period") && stderr.contains("0 result(s)"),
        "{stderr}"
    );

    // Refused: non-zero, the status code and message on one line.
    let (code, stdout, stderr) = out(lethe(d).args([
        "search",
        "LJT1222",
        "--purpose",
        "investigation",
        "--case",
        "C-1",
        "--json",
        "--as",
        "nv-city-pd",
        "--server",
        &server,
    ]));
    assert_ne!(code, 0);
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("PERMISSION_DENIED: denied by rule forbid-search-out-of-state"),
        "{stderr}"
    );
    let (code, _, stderr) = out(lethe(d)
        .args([
            "search",
            "LJT1222",
            "--purpose",
            "investigation",
            "--case",
            "C-1",
            "--server",
            &server,
        ])
        .env("LETHE_TOKEN", "bogus-token-0123456789"));
    assert_ne!(code, 0);
    assert!(stderr.starts_with("UNAUTHENTICATED:"), "{stderr}");

    // SIGTERM: a graceful stop, exit 0.
    let mut s = s;
    let pid = s.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(s.child.wait().unwrap().success());
}
