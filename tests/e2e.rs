//! The main job, end to end, as its users run it: `lethe init`, `lethe serve`, the whole real
//! sample imported through `lethe import --rebase-to-now`, searches allowed and refused, a sweep
//! with the clock moved past retention for the oldest day (faketime), the ledger verified, the
//! audit passing, the access report. On the embedded default, and on the real S3 server.
//!
//! Peak memory (VmHWM) of the server and the importer is measured and printed; BENCHMARKS.md
//! states the bound, and the test fails above it.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SAMPLE: &str = "../shared/data/seattle-reads-2021-10.csv.gz";
/// The bound on peak RSS stated in BENCHMARKS.md, for the server and for the importer.
const PEAK_RSS_BOUND_MIB: u64 = 512;

fn sample() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(SAMPLE);
    p.exists().then_some(p)
}

fn lethe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lethe"))
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs a command to the end while sampling its peak RSS; (exit code, stdout, stderr, peak KiB).
fn run_measured(mut cmd: Command) -> (i32, String, String, u64) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let mut peak = 0;
    let status = loop {
        if let Some(k) = vm_hwm_kib(pid) {
            peak = peak.max(k);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code().unwrap_or(-1), t_out.join().unwrap(), t_err.join().unwrap(), peak)
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Rows of the sample with a plate and a capture time, and the most frequent plate with its count.
fn expected(sample: &Path) -> (usize, String, usize) {
    let f = flate2::read::GzDecoder::new(std::fs::File::open(sample).unwrap());
    let mut valid = 0;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.unwrap();
        if i == 0 {
            continue;
        }
        let cols: Vec<&str> = line.split('|').collect();
        if cols.len() < 7 || cols[0].trim().is_empty() {
            continue;
        }
        if let Ok(p) = lethe::model::plate::canonical(cols[6]) {
            valid += 1;
            *counts.entry(p).or_default() += 1;
        }
    }
    let (plate, n) = counts.into_iter().max_by_key(|(p, n)| (*n, std::cmp::Reverse(p.clone()))).unwrap();
    (valid, plate, n)
}

fn field(summary: &str, name: &str) -> usize {
    let i = summary
        .find(&format!("{name} "))
        .unwrap_or_else(|| panic!("no '{name}' in {summary}"));
    summary[i + name.len() + 1..].split_whitespace().next().unwrap().parse().unwrap()
}

/// The whole flow with the given store settings. `days_of` lists the capture days stored.
/// What a sweep at a moved clock did: whether it refused without `--force`, and per day with
/// deletions, whether the day was closed (key destroyed) and reconciled.
struct SweepOutcome {
    refused_without_force: bool,
    deleted_days: Vec<(String, bool)>,
}

type SweepAt<'a> = &'a dyn Fn(chrono::DateTime<chrono::Utc>, &Path) -> SweepOutcome;

fn flow(env: &[(&str, String)], days_of: &dyn Fn() -> Vec<String>, sweep_at: SweepAt) {
    let Some(sample) = sample() else {
        // The sample ships beside the repository (shared/data); CI always has it.
        assert!(std::env::var("CI").is_err(), "sample data missing in CI");
        return eprintln!("skipped: {SAMPLE} not present");
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server_addr = format!("http://127.0.0.1:{port}");
    let setup = |c: &mut Command| {
        c.current_dir(dir.path())
            .env_remove("LETHE_CONFIG")
            .env("LETHE_POLICIES_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
            .env("LETHE_FSYNC", "false")
            .env("RUST_LOG", "warn")
            .env("TZ", "UTC");
        for (k, v) in env {
            c.env(k, v);
        }
    };

    // init, with the shipped policy approved by the admin principal
    let mut c = lethe();
    setup(&mut c);
    let (code, out, err) = run(c.args(["init", "--approve-as", "admin"]));
    assert_eq!(code, 0, "init: {out}{err}");

    // serve
    let mut c = lethe();
    setup(&mut c);
    let child = c
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(60), "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    // import the whole sample
    let mut c = lethe();
    setup(&mut c);
    c.args([
        "import",
        sample.to_str().unwrap(),
        "--rebase-to-now",
        "--as",
        "ingest-gateway",
        "--server",
        &server_addr,
    ]);
    let (code, out, err, import_peak) = run_measured(c);
    assert_eq!(code, 0, "import: {out}{err}");
    let (valid, top_plate, top_count) = expected(&sample);
    let summary = out
        .lines()
        .find(|l| l.starts_with("sent "))
        .unwrap_or_else(|| panic!("no summary: {out}"));
    assert_eq!(field(summary, "stored"), valid, "{out}");
    let rejected = field(summary, "rejected") + field(summary, "unparseable");
    assert_eq!(
        field(summary, "sent") + field(summary, "unparseable"),
        field(summary, "stored") + rejected + field(summary, "duplicates")
    );
    if rejected > 0 {
        assert!(out.contains("by reason:"), "every rejection has a reason: {out}");
    }

    let search = |who: &str, extra: &[&str]| {
        let mut c = lethe();
        setup(&mut c);
        c.args(["search", &top_plate, "--as", who, "--server", &server_addr, "--json"])
            .args(extra);
        run(&mut c)
    };
    // a California agency finds every read of the most frequent plate, inside the window
    let (code, out, err) = search("city-pd", &["--purpose", "investigation", "--case", "E2E-1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), top_count, "{err}");
    // an out-of-state agency is refused, and recorded
    let (code, out, err) = search("nv-city-pd", &["--purpose", "investigation", "--case", "E2E-2"]);
    assert_ne!(code, 0);
    assert!(out.is_empty() && err.contains("PERMISSION_DENIED"), "{out}{err}");
    let mut c = lethe();
    setup(&mut c);
    let (code, out, _) = run(c.args(["ledger", "show", "--kind", "access", "--json"]));
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.contains("\"nv-city-pd\"") && l.contains("forbid-search-out-of-state")),
        "{out}"
    );
    assert!(!out.contains(&top_plate), "the ledger holds no plaintext plate");

    let server_peak = vm_hwm_kib(server.0.id()).unwrap_or(0);
    drop(server);

    // sweep with the clock moved past retention for the oldest capture day only
    let days = days_of();
    assert!(days.len() >= 2, "{days:?}");
    let next_day = chrono::NaiveDate::parse_from_str(&days[1], "%Y-%m-%d").unwrap();
    // Ten minutes past the end of the oldest day's retention: its key is destroyed once the
    // day ended more than the allowed clock skew (5 min) before the cutoff.
    let at = next_day.and_hms_opt(0, 0, 0).unwrap().and_utc() + chrono::Duration::hours(720) + chrono::Duration::minutes(10);
    let outcome = sweep_at(at, dir.path());
    assert!(outcome.refused_without_force, "the clock guard refuses a clock a month ahead");
    assert_eq!(outcome.deleted_days.len(), 1, "exactly one day deleted: {:?}", outcome.deleted_days);
    assert_eq!(
        outcome.deleted_days[0],
        (days[0].clone(), true),
        "the oldest day deleted, its key destroyed, reconciled"
    );
    assert_eq!(days_of().first(), days.get(1), "the oldest day is gone, the next one kept");

    // the ledger verifies; the audit passes; the access report lists both searches
    let mut c = lethe();
    setup(&mut c);
    let (code, out, err) = run(c.args(["ledger", "verify"]));
    assert_eq!(code, 0, "{out}{err}");
    let mut c = lethe();
    setup(&mut c);
    let (code, out, err) = run(c.args(["audit"]));
    assert_eq!(code, 0, "audit: {out}{err}");
    let mut c = lethe();
    setup(&mut c);
    let (code, out, err) = run(c.args(["report", "access", "--format", "csv"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("nv-city-pd") && out.contains("city-pd") && out.contains(&top_plate),
        "{out}"
    );

    eprintln!("peak RSS: server {} MiB, importer {} MiB", server_peak / 1024, import_peak / 1024);
    assert!(
        server_peak / 1024 < PEAK_RSS_BOUND_MIB,
        "server peak RSS {} MiB",
        server_peak / 1024
    );
    assert!(
        import_peak / 1024 < PEAK_RSS_BOUND_MIB,
        "importer peak RSS {} MiB",
        import_peak / 1024
    );
}

#[test]
fn main_job_on_the_embedded_default() {
    let data = tempfile::tempdir().unwrap();
    let path = data.path().to_path_buf();
    let days_of = move || {
        let mut d: Vec<String> = std::fs::read_dir(path.join("reads"))
            .map(|r| r.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
            .unwrap_or_default();
        d.sort();
        d
    };
    let data_dir = data.path().display().to_string();
    let sweep_at = |at: chrono::DateTime<chrono::Utc>, work: &Path| {
        // faketime moves the process clock; the local store's clock (file mtimes) stays real,
        // so the guard refuses unless forced.
        let fake = format!("@{}", at.format("%Y-%m-%d %H:%M:%S"));
        let sweep = |force: bool| {
            let mut c = Command::new("faketime");
            c.current_dir(work)
                .env_remove("LETHE_CONFIG")
                .env("LETHE_POLICIES_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
                .env("LETHE_DATA_DIR", &data_dir)
                .env("TZ", "UTC")
                .args(["-f", &fake, env!("CARGO_BIN_EXE_lethe"), "sweep"]);
            if force {
                c.arg("--force");
            }
            run(&mut c)
        };
        let (code, out, err) = sweep(false);
        let refused_without_force = code == 3 && err.contains("refusing to sweep");
        let (code, out2, err2) = sweep(true);
        assert_eq!(code, 0, "sweep: {out}{out2}{err2}");
        let deleted_days = out2
            .lines()
            .filter(|l| l.starts_with("20") && !l.contains("deleted       0"))
            .map(|l| (l[..10].to_string(), l.contains("key destroyed  reconciled")))
            .collect();
        SweepOutcome {
            refused_without_force,
            deleted_days,
        }
    };
    flow(&[("LETHE_DATA_DIR", data.path().display().to_string())], &days_of, &sweep_at);
}

#[tokio::test(flavor = "multi_thread")]
async fn main_job_on_the_real_s3_server() {
    let Some(env) = common::s3_env() else {
        return eprintln!("skipped: LETHE_TEST_S3_ENDPOINT unset");
    };
    let bucket = common::fresh_bucket(&env, "e2e").await;
    let store = common::object_store_for(&env, &bucket);
    let handle = tokio::runtime::Handle::current();
    let days_of = move || {
        let store = store.clone();
        tokio::task::block_in_place(|| {
            handle.block_on(async move {
                let prefix = object_store::path::Path::from("reads");
                let l = store.list_with_delimiter(Some(&prefix)).await.unwrap();
                let mut d: Vec<String> = l
                    .common_prefixes
                    .iter()
                    .filter_map(|p| p.filename().map(|s| s.to_string()))
                    .collect();
                d.sort();
                d
            })
        })
    };
    let vars = vec![
        ("LETHE_STORE", "s3".to_string()),
        ("LETHE_S3_BUCKET", bucket.clone()),
        ("LETHE_S3_ENDPOINT", env.endpoint.clone()),
        ("LETHE_S3_ALLOW_HTTP", "true".to_string()),
        ("AWS_ACCESS_KEY_ID", env.access_key.clone()),
        ("AWS_SECRET_ACCESS_KEY", env.secret_key.clone()),
        ("AWS_REGION", env.region.clone()),
    ];
    // On S3 the clock is moved with an injected clock in-process: faketime would also move the
    // SigV4 request time, which the server (rightly) refuses.
    let vars2 = vars.clone();
    let handle = tokio::runtime::Handle::current();
    let sweep_at = move |at: chrono::DateTime<chrono::Utc>, work: &Path| {
        let mut cfg = lethe::config::Config::default();
        let vars = vars2.clone();
        cfg.apply_env(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
            .unwrap();
        cfg.keys.dir = work.join("lethe-keys");
        cfg.policies_dir = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/policies").into());
        tokio::task::block_in_place(|| {
            handle.block_on(async move {
                let ctx = lethe::cli::context::Context::open_with(cfg).await.unwrap();
                let ledger = lethe::cli::context::open_ledger(&ctx).await.unwrap();
                let log = lethe::sweep::ledger_log::LedgerProofLog::new(ledger, "sweep@e2e");
                let clock = lethe::clock::ManualClock::new(at);
                let opts = |force| lethe::sweep::SweepOptions {
                    retention: lethe::policy::Retention::default(),
                    force,
                    writer: "sweep@e2e".into(),
                    ..Default::default()
                };
                let refused = lethe::sweep::run(&ctx.reads, &log, &clock, &opts(false)).await;
                let refused_without_force = matches!(&refused, Err(e) if e.exit_code() == 3);
                let rep = lethe::sweep::run(&ctx.reads, &log, &clock, &opts(true)).await.unwrap();
                assert_eq!(rep.exit_code(), 0);
                let deleted_days = rep
                    .days
                    .iter()
                    .filter(|d| d.deleted > 0)
                    .map(|d| {
                        (
                            d.day.to_string(),
                            d.closed.as_ref().is_some_and(|p| p.key_destroyed && p.reconciled),
                        )
                    })
                    .collect();
                SweepOutcome {
                    refused_without_force,
                    deleted_days,
                }
            })
        })
    };
    tokio::task::block_in_place(|| flow(&vars, &days_of, &sweep_at));
}
