//! The daily audit, policy records, approvals and the access reports, end to end on a
//! local-directory store (and bucket settings on the real S3 server when configured).

mod common;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, TimeZone, Utc};
use lethe::audit::report::{self, Format};
use lethe::audit::{self, AuditInputs, AuditReport, Check, PolicySet, PolicyStart};
use lethe::cli::context::{open_ledger, Context};
use lethe::clock::ManualClock;
use lethe::config::{Config, StoreKind};
use lethe::crypto::AuditKey;
use lethe::ledger::record::{Access, Decision, IngestCommit, Receipt};
use lethe::ledger::{Ledger, Record, RecordBody};
use lethe::model::{PlateRead, ReadInput, ReadLimits};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStoreExt, PutPayload};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap()
}

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    ctx: Context,
    ledger: Ledger,
    clock: ManualClock,
}

fn copy_policies(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    copy_policies(&root.join("policies"));
    let mut config = Config::default();
    config.store.kind = StoreKind::Local;
    config.store.path = root.join("data");
    config.keys.dir = root.join("keys");
    config.policies_dir = Some(root.join("policies"));
    let ctx = Context::open_with(config).await.unwrap();
    let ledger = open_ledger(&ctx).await.unwrap();
    Env {
        _dir: dir,
        root,
        ctx,
        ledger,
        clock: ManualClock::new(t0()),
    }
}

impl Env {
    fn policy(&self) -> PolicySet {
        PolicySet::load(&self.root.join("policies")).unwrap()
    }

    async fn audit(&self) -> AuditReport {
        let policy = self.policy();
        let report = audit::run(AuditInputs {
            config: &self.ctx.config,
            policy: &policy,
            ledger: &self.ledger,
            reads: &self.ctx.reads,
            store: &self.ctx.object_store,
            clock: &self.clock,
            trusted_checkpoint: None,
        })
        .await
        .unwrap();
        audit::record_outcome(&self.ledger, &report, "test-audit", &self.clock)
            .await
            .unwrap();
        report
    }

    async fn approve(&self, who: &str) -> Result<String, audit::AuditError> {
        audit::approve(
            &self.ledger,
            self.ctx.object_store.as_ref(),
            &self.policy(),
            who,
            "test",
            &self.clock,
        )
        .await
    }

    async fn append(&self, body: RecordBody) {
        self.ledger
            .append(&Record::new(self.clock.now_utc(), "test-serve", body))
            .await
            .unwrap();
    }
}

trait NowUtc {
    fn now_utc(&self) -> DateTime<Utc>;
}
impl NowUtc for ManualClock {
    fn now_utc(&self) -> DateTime<Utc> {
        lethe::clock::Clock::now(self)
    }
}

fn lines(r: &AuditReport, c: Check) -> Vec<String> {
    r.check(c).unwrap().findings.clone()
}

fn dump(r: &AuditReport) -> String {
    let mut v = Vec::new();
    r.write_text(&mut v).unwrap();
    String::from_utf8(v).unwrap()
}

/// Lets Nevada agencies search (the misconfiguration the product exists to catch) and registers
/// a Nevada sheriff with search rights.
fn grant_out_of_state(policies: &Path) {
    let p = policies.join("access.cedar");
    let text = std::fs::read_to_string(&p).unwrap();
    let text = text.replace(
        "principal.jurisdiction == \"CA\" &&",
        "(principal.jurisdiction == \"CA\" || principal.jurisdiction == \"NV\") &&",
    );
    let start = text.find("@id(\"forbid-search-out-of-state\")").unwrap();
    let end = start + text[start..].find("};").unwrap() + 2;
    let text = format!("{}{}", &text[..start], &text[end..]);
    std::fs::write(&p, text).unwrap();
    let mut reg = std::fs::read_to_string(policies.join("principals.toml")).unwrap();
    reg.push_str(
        "\n[[principal]]\nid = \"washoe-so\"\nagency = \"Washoe County Sheriff (NV)\"\nagency_kind = \"public\"\n\
         level = \"local\"\njurisdiction = \"NV\"\nroles = [\"search\"]\n",
    );
    std::fs::write(policies.join("principals.toml"), reg).unwrap();
}

fn access(
    (principal, agency, jurisdiction): (&str, &str, &str),
    key: &AuditKey,
    plate: &str,
    allow: bool,
    count: u64,
    case: Option<&str>,
) -> RecordBody {
    RecordBody::Access(Access {
        principal: principal.into(),
        agency: agency.into(),
        jurisdiction: jurisdiction.into(),
        purpose: "investigation".into(),
        case_number: case.map(Into::into),
        plate_ciphertext: key.seal_plate(plate),
        plate_blind: vec![1, 2, 3],
        window_from: t0() - Duration::days(7),
        window_to: t0(),
        decision: if allow { Decision::Allow } else { Decision::Deny },
        rule: if allow {
            "search-ca-public-agency".into()
        } else {
            "forbid-search-out-of-state".into()
        },
        reason: "test".into(),
        receipt: Receipt {
            count,
            read_id_hashes: vec![[7u8; 32]; count as usize],
        },
    })
}

#[tokio::test]
async fn policy_records_at_start() {
    let e = env().await;
    let p = e.policy();
    let first = audit::record_policy_on_start(&e.ledger, &p, "serve", &e.clock).await.unwrap();
    assert_eq!(first, PolicyStart::First { hash: p.hash.clone() });
    let again = audit::record_policy_on_start(&e.ledger, &p, "sweep", &e.clock).await.unwrap();
    assert_eq!(again, PolicyStart::Unchanged { hash: p.hash.clone() });
    grant_out_of_state(&e.root.join("policies"));
    let p2 = e.policy();
    match audit::record_policy_on_start(&e.ledger, &p2, "serve", &e.clock).await.unwrap() {
        PolicyStart::Changed { old, new, changed } => {
            assert_eq!(old, p.hash);
            assert_eq!(new, p2.hash);
            let names: Vec<&str> = changed.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, vec!["access.cedar", "principals.toml"]);
        }
        other => panic!("{other:?}"),
    }
    // The ledger holds PolicyLoaded, PolicyChanged (naming the files), PolicyLoaded.
    let mut kinds = Vec::new();
    let mut changed_names = Vec::new();
    audit::scan::for_each_record(e.ledger.reader(), |_, r| {
        kinds.push(r.kind());
        if let RecordBody::PolicyChanged(c) = r.body {
            changed_names = c.changed_files.into_iter().map(|f| f.name).collect();
        }
    })
    .await
    .unwrap();
    assert_eq!(kinds, vec!["policy_loaded", "policy_changed", "policy_loaded"]);
    assert_eq!(changed_names, vec!["access.cedar", "principals.toml"]);
}

#[tokio::test]
async fn approval_needs_the_admin_role() {
    let e = env().await;
    for who in ["auditor", "city-pd", "nobody"] {
        let err = e.approve(who).await.unwrap_err();
        assert!(matches!(err, audit::AuditError::ApprovalRefused { .. }), "{who}: {err}");
    }
    assert_eq!(e.approve("admin").await.unwrap(), e.policy().hash);
}

#[tokio::test]
async fn out_of_state_agency_added_without_approval_then_approved() {
    let e = env().await;
    let key = AuditKey::ephemeral();
    // No baseline yet: that alone is a finding.
    let r = e.audit().await;
    assert!(
        lines(&r, Check::PolicyDrift)[0].contains("no approved policy baseline"),
        "{}",
        dump(&r)
    );

    e.approve("admin").await.unwrap();
    e.append(access(
        ("city-pd", "City Police Department (CA)", "CA"),
        &key,
        "7ABC123",
        true,
        2,
        Some("C-1"),
    ))
    .await;
    let r = e.audit().await;
    assert!(r.passed(), "a compliant deployment has no findings:\n{}", dump(&r));

    // Someone widens the policy and registers a Nevada agency, without approval, and it searches.
    grant_out_of_state(&e.root.join("policies"));
    e.append(access(
        ("washoe-so", "Washoe County Sheriff (NV)", "NV"),
        &key,
        "7ABC123",
        true,
        1,
        Some("NV-9"),
    ))
    .await;
    let r = e.audit().await;
    assert!(!r.passed());
    let drift = lines(&r, Check::PolicyDrift).join("\n");
    assert!(
        drift.contains("access.cedar modified") && drift.contains("principals.toml modified"),
        "{drift}"
    );
    assert!(
        drift.contains("principal added without approval: washoe-so (Washoe County Sheriff (NV)"),
        "{drift}"
    );
    assert!(
        drift.contains("search rights granted without approval: washoe-so") && drift.contains("nv-city-pd"),
        "{drift}"
    );
    let who = lines(&r, Check::WhoCanSearch).join("\n");
    assert!(
        who.contains("Washoe County Sheriff (NV)") && who.contains("outside the approved jurisdictions"),
        "{who}"
    );
    let review = lines(&r, Check::AccessReview).join("\n");
    assert!(
        review.contains("washoe-so") && review.contains("not in the approved baseline"),
        "{review}"
    );
    // The CLI's exit code follows `passed`.
    assert!(r.findings() >= 4);

    // Approval clears the drift, but approving does not make an out-of-state agency lawful.
    e.approve("admin").await.unwrap();
    let r = e.audit().await;
    assert!(lines(&r, Check::PolicyDrift).is_empty(), "{}", dump(&r));
    let who = lines(&r, Check::WhoCanSearch).join("\n");
    assert!(who.contains("Washoe County Sheriff (NV)") && who.contains("nv-city-pd"), "{who}");
    assert!(!r.passed());
    // The access review covers only what came after the previous audit.
    assert!(lines(&r, Check::AccessReview).is_empty(), "{}", dump(&r));
}

#[tokio::test]
async fn allowed_search_without_case_number_is_a_finding() {
    let e = env().await;
    let key = AuditKey::ephemeral();
    e.approve("admin").await.unwrap();
    e.append(access(
        ("city-pd", "City Police Department (CA)", "CA"),
        &key,
        "7ABC123",
        true,
        0,
        None,
    ))
    .await;
    let r = e.audit().await;
    let review = lines(&r, Check::AccessReview).join("\n");
    assert!(review.contains("without a case number"), "{review}");
}

fn read(id: &str, plate: &str, at: DateTime<Utc>) -> PlateRead {
    let limits = ReadLimits {
        max_image_bytes: 1 << 20,
        future_skew: Duration::minutes(5),
        cutoff: at - Duration::days(1),
        now: at,
    };
    ReadInput {
        read_id: Some(id.into()),
        plate: plate.into(),
        region: Some("CA".into()),
        captured_at: Some(at),
        camera_id: "cam-1".into(),
        ..Default::default()
    }
    .validate(&limits, || unreachable!())
    .unwrap()
}

#[tokio::test]
async fn an_expired_day_that_was_never_swept_is_reported() {
    let e = env().await;
    e.approve("admin").await.unwrap();
    let captured = t0() - Duration::days(45);
    for i in 0..3 {
        let r = read(&format!("r{i}"), "7ABC123", captured + Duration::minutes(i));
        e.ctx.reads.put(&r, true, captured + Duration::hours(1)).await.unwrap();
    }
    e.append(RecordBody::IngestCommit(IngestCommit {
        day: captured.date_naive(),
        count: 3,
        merkle_root: [0u8; 32],
        first_key: String::new(),
        last_key: String::new(),
    }))
    .await;
    // A fresh read inside retention is fine.
    let fresh = read("fresh", "8XYZ999", t0() - Duration::days(2));
    e.ctx.reads.put(&fresh, true, t0()).await.unwrap();
    let r = e.audit().await;
    let ret = lines(&r, Check::Retention).join("\n");
    let day = captured.date_naive().to_string();
    assert!(ret.contains(&format!("capture day {day} expired")), "{ret}");
    assert!(ret.contains("3 read(s) still stored"), "{ret}");
    assert!(
        ret.contains("day key is not destroyed") && ret.contains("no deletion proof"),
        "{ret}"
    );
    assert!(ret.contains("3 stored read(s) are past retention"), "{ret}");
    assert!(!ret.contains(&(t0() - Duration::days(2)).date_naive().to_string()), "{ret}");
    assert!(!r.passed());
}

// Regression: the summary once counted a swept day's reads twice (its batch proofs and the
// closing proof that restates their totals). Also: a really swept day raises no finding.
#[tokio::test]
async fn a_day_swept_by_the_sweeper_is_compliant() {
    let e = env().await;
    e.approve("admin").await.unwrap();
    let captured = t0() - Duration::days(45);
    for i in 0..3 {
        let r = read(&format!("r{i}"), "7ABC123", captured + Duration::minutes(i));
        e.ctx.reads.put(&r, true, captured + Duration::hours(1)).await.unwrap();
    }
    e.append(RecordBody::IngestCommit(IngestCommit {
        day: captured.date_naive(),
        count: 3,
        merkle_root: [0u8; 32],
        first_key: String::new(),
        last_key: String::new(),
    }))
    .await;
    let log = lethe::sweep::ledger_log::LedgerProofLog::new(e.ledger.clone(), "test-sweep");
    let opts = lethe::sweep::SweepOptions {
        // The test clock is not the store's clock.
        force: true,
        ..Default::default()
    };
    let swept = lethe::sweep::run(&e.ctx.reads, &log, &e.clock, &opts).await.unwrap();
    assert_eq!(swept.deleted(), 3);
    let r = e.audit().await;
    assert!(lines(&r, Check::Retention).is_empty(), "{}", dump(&r));
    let (s, _) = report::summary(e.ledger.reader(), &e.ctx.reads, None, None, t0()).await.unwrap();
    assert_eq!((s.reads_ingested, s.reads_deleted, s.days_shredded), (3, 3, 1));

    // A server that kept the destroyed key and committed reads for the closed day afterwards:
    // a finding naming the day.
    e.append(RecordBody::IngestCommit(IngestCommit {
        day: captured.date_naive(),
        count: 2,
        merkle_root: [0u8; 32],
        first_key: String::new(),
        last_key: String::new(),
    }))
    .await;
    let r = e.audit().await;
    let found = lines(&r, Check::Retention);
    assert!(
        found
            .iter()
            .any(|l| l.contains(&captured.date_naive().to_string()) && l.contains("committed after its closing proof")),
        "{}",
        dump(&r)
    );
}

#[tokio::test]
async fn a_tampered_ledger_entry_is_reported() {
    let e = env().await;
    let key = AuditKey::ephemeral();
    e.approve("admin").await.unwrap();
    e.append(access(
        ("city-pd", "City Police Department (CA)", "CA"),
        &key,
        "7ABC123",
        true,
        2,
        Some("C-1"),
    ))
    .await;
    // Rewrite an access record in its batch object: the receipt now claims nothing was returned.
    let store = e.ctx.object_store.clone();
    let batches: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(store.list(Some(&ObjPath::from("ledger/batches"))))
        .await
        .unwrap();
    let mut tampered = false;
    for m in batches {
        let bytes = store.get(&m.location).await.unwrap().bytes().await.unwrap();
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        for rec in v["records"].as_array_mut().unwrap() {
            let raw = b64.decode(rec.as_str().unwrap()).unwrap();
            let text = String::from_utf8(raw).unwrap();
            if text.contains("\"kind\":\"access\"") {
                let changed = text.replace("\"count\":2", "\"count\":0");
                *rec = serde_json::Value::String(b64.encode(changed));
                tampered = true;
            }
        }
        if tampered {
            store
                .put(&m.location, PutPayload::from(serde_json::to_vec(&v).unwrap()))
                .await
                .unwrap();
            break;
        }
    }
    assert!(tampered);
    let r = e.audit().await;
    let ret = lines(&r, Check::Retention).join("\n");
    assert!(ret.contains("ledger does not verify"), "{}", dump(&r));
    assert!(!r.passed());
}

#[tokio::test]
async fn access_report_lists_every_search_of_the_window_and_the_summary_has_no_plate() {
    let e = env().await;
    let key = AuditKey::ephemeral();
    e.clock.set(t0() - Duration::days(3));
    e.append(access(
        ("city-pd", "City Police Department (CA)", "CA"),
        &key,
        "OLD0001",
        true,
        1,
        Some("C-0"),
    ))
    .await;
    e.clock.set(t0());
    e.append(access(
        ("city-pd", "City Police Department (CA)", "CA"),
        &key,
        "7ABC123",
        true,
        3,
        Some("C-1"),
    ))
    .await;
    e.clock.set(t0() + Duration::minutes(5));
    e.append(access(
        ("nv-city-pd", "City Police Department (NV)", "NV"),
        &key,
        "5DEF456",
        false,
        0,
        Some("NV-2"),
    ))
    .await;
    e.clock.set(t0() + Duration::minutes(9));
    e.append(access(
        ("state-patrol", "California State Patrol", "CA"),
        &key,
        "9GHI789",
        true,
        0,
        Some("C-3"),
    ))
    .await;

    let from = Some(t0() - Duration::hours(1));
    let to = Some(t0() + Duration::hours(1));
    let (rows, problems) = report::access_rows(e.ledger.reader(), from, to, Some(&key)).await.unwrap();
    assert!(problems.is_empty());
    assert_eq!(rows.len(), 3, "the search three days earlier is outside the window");
    assert_eq!(
        rows.iter().map(|r| r.plate.as_str()).collect::<Vec<_>>(),
        vec!["7ABC123", "5DEF456", "9GHI789"]
    );
    assert_eq!((rows[0].returned, rows[0].reads_returned), (true, 3));
    assert_eq!(rows[1].decision, "deny");
    assert_eq!(
        (rows[1].username.as_str(), rows[1].organization.as_str()),
        ("nv-city-pd", "City Police Department (NV)")
    );
    assert_eq!((rows[2].returned, rows[2].reads_returned), (false, 0));
    for r in &rows {
        assert!(!r.purpose.is_empty() && !r.username.is_empty() && !r.organization.is_empty());
    }
    let mut csv = Vec::new();
    report::write_access(&rows, Format::Csv, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("time,plate,username,organization,jurisdiction,purpose,case_number,decision,rule,returned,reads_returned"));
    assert!(
        csv.contains("2026-11-20T10:00:00Z,7ABC123,city-pd,City Police Department (CA),CA,investigation,C-1,allow"),
        "{csv}"
    );
    assert!(csv.contains(",deny,forbid-search-out-of-state,no,0,"), "{csv}");
    for f in [Format::Json, Format::Table] {
        let mut out = Vec::new();
        report::write_access(&rows, f, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("5DEF456"));
    }
    // Without the audit key, plates stay sealed.
    let (sealed, _) = report::access_rows(e.ledger.reader(), from, to, None).await.unwrap();
    assert!(sealed.iter().all(|r| r.plate == report::SEALED));

    let (s, _) = report::summary(e.ledger.reader(), &e.ctx.reads, None, None, t0()).await.unwrap();
    assert_eq!(s.agencies["City Police Department (CA)"].searches, 2);
    assert_eq!(s.agencies["City Police Department (NV)"].denials, 1);
    for f in [Format::Table, Format::Json] {
        let mut out = Vec::new();
        report::write_summary(&s, f, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for secret in ["7ABC123", "5DEF456", "9GHI789", "OLD0001", "city-pd", "nv-city-pd", "state-patrol"] {
            assert!(!text.contains(secret), "summary leaks {secret}:\n{text}");
        }
        assert!(text.contains("City Police Department (NV)"));
    }
}

#[tokio::test]
async fn loose_key_file_permissions_are_findings() {
    use std::os::unix::fs::PermissionsExt;
    let e = env().await;
    e.approve("admin").await.unwrap();
    let kek = e.ctx.config.keys.kek_path();
    std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&e.ctx.config.keys.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = e.audit().await;
    let s = lines(&r, Check::StoreSettings).join("\n");
    assert!(s.contains("key file") && s.contains("644"), "{s}");
    assert!(s.contains("keys folder") && s.contains("755"), "{s}");
}

// ---- bucket settings on the real S3 server ----

async fn s3_fresh(env: &common::S3Env, name: &str) -> (aws_sdk_s3::Client, String) {
    let sc = lethe::config::StoreConfig {
        kind: StoreKind::S3,
        endpoint: Some(env.endpoint.clone()),
        region: Some(env.region.clone()),
        allow_http: true,
        ..Default::default()
    };
    let client = lethe::store::s3admin::client(&sc).await.unwrap();
    let bucket = format!(
        "audit-{name}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000_000
    );
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    (client, bucket)
}

async fn settings_findings(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let mut r = audit::CheckResult::new(Check::StoreSettings);
    audit::settings::check_bucket(
        client,
        bucket,
        &lethe::config::AuditConfig::default(),
        lethe::policy::Retention::default(),
        &mut r,
    )
    .await;
    r.findings
}

async fn put_lifecycle(client: &aws_sdk_s3::Client, bucket: &str, noncurrent: bool) {
    use aws_sdk_s3::types::*;
    let mut rule = LifecycleRule::builder()
        .id("lethe-backstop")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .expiration(LifecycleExpiration::builder().days(33).build());
    if noncurrent {
        rule = rule.noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(1).build());
    }
    client
        .put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(rule.build().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

async fn enable_versioning(client: &aws_sdk_s3::Client, bucket: &str) {
    use aws_sdk_s3::types::*;
    client
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn real_s3_versioned_bucket_without_noncurrent_expiry_is_a_finding() {
    let Some(env) = common::s3_env() else { return };
    let (client, bucket) = s3_fresh(&env, "versioned").await;
    enable_versioning(&client, &bucket).await;
    put_lifecycle(&client, &bucket, false).await;
    let f = settings_findings(&client, &bucket).await.join("\n");
    assert!(
        f.contains("versioning is Enabled") && f.contains("noncurrent versions of reads/"),
        "{f}"
    );
    assert!(!f.contains("no lifecycle backstop"), "{f}");
}

#[tokio::test]
async fn real_s3_bucket_without_backstop_is_a_finding() {
    let Some(env) = common::s3_env() else { return };
    let (client, bucket) = s3_fresh(&env, "nobackstop").await;
    let f = settings_findings(&client, &bucket).await.join("\n");
    assert!(f.contains("no lifecycle backstop"), "{f}");
}

#[tokio::test]
async fn real_s3_compliant_buckets_have_no_findings() {
    let Some(env) = common::s3_env() else { return };
    // Unversioned, with the backstop exactly as the sweeper's setter (`lethe init`) writes it.
    let (client, bucket) = s3_fresh(&env, "compliant").await;
    lethe::sweep::lifecycle::set_lifecycle_backstop(
        &client,
        &bucket,
        &lethe::policy::Retention::default(),
        lethe::sweep::lifecycle::DEFAULT_MARGIN_DAYS,
    )
    .await
    .unwrap();
    let f = settings_findings(&client, &bucket).await;
    assert!(f.is_empty(), "{f:?}");
    // Versioned, with noncurrent versions expired after a day: compliant too.
    let (client, bucket) = s3_fresh(&env, "versioned-ok").await;
    enable_versioning(&client, &bucket).await;
    put_lifecycle(&client, &bucket, true).await;
    let f = settings_findings(&client, &bucket).await;
    assert!(f.is_empty(), "{f:?}");
}

#[tokio::test]
async fn real_s3_public_bucket_is_a_finding() {
    let Some(env) = common::s3_env() else { return };
    let (client, bucket) = s3_fresh(&env, "public").await;
    put_lifecycle(&client, &bucket, false).await;
    client
        .put_bucket_acl()
        .bucket(&bucket)
        .acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    let f = settings_findings(&client, &bucket).await.join("\n");
    assert!(f.contains("is public"), "{f}");
}
