//! Black-box tests of the gRPC API: a server on 127.0.0.1:0, driven by the generated tonic client.

mod api_support;

use api_support::*;
use futures::StreamExt;
use lethe::api::proto::{self, ReadStatus};
use lethe::api::ApiLimits;
use lethe::ledger::record::{Access, Decision, IngestCommit};
use lethe::ledger::RecordBody;
use lethe::store::fault::{Fault, Op};
use tonic::Code;

fn sha256(s: &str) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
        .as_ref()
        .try_into()
        .unwrap()
}

fn statuses(ack: &proto::IngestResponse) -> Vec<ReadStatus> {
    ack.results.iter().map(|r| r.status()).collect()
}

fn access_records(ledger: &[RecordBody]) -> Vec<Access> {
    ledger
        .iter()
        .filter_map(|r| match r {
            RecordBody::Access(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

fn commits(ledger: &[RecordBody]) -> Vec<IngestCommit> {
    ledger
        .iter()
        .filter_map(|r| match r {
            RecordBody::IngestCommit(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn ids(results: &[proto::SearchResult]) -> Vec<String> {
    results.iter().map(|r| r.read.as_ref().unwrap().read_id.clone()).collect()
}

#[tokio::test]
async fn ingest_then_search_finds_exactly_that_plate() {
    let h = Harness::start().await;
    let ack = h
        .ingest(vec![
            read("a1", "7ABC123", t0() - hours(30), "cam-1"),
            read("a2", "7abc-123", t0() - hours(5), "cam-2"),
            read("a3", "7 ABC 123", t0() - hours(4), "cam-1"),
            read("b1", "8XYZ999", t0() - hours(4), "cam-1"),
            read("c1", "7A8C123", t0() - hours(3), "cam-3"), // OCR misread of 7ABC123 (B read as 8)
        ])
        .await
        .unwrap();
    assert_eq!((ack.stored, ack.duplicates, ack.rejected), (5, 0, 0), "{ack:?}");
    assert!(statuses(&ack).iter().all(|s| *s == ReadStatus::Stored));
    // Two capture days: two ingest commits, each covering its day's reads.
    let c = commits(&h.ledger().await);
    assert_eq!(c.len(), 2);
    assert_eq!(c.iter().map(|c| c.count).sum::<u64>(), 5);
    assert!(c.iter().all(|c| c.first_key.starts_with("reads/") && c.first_key <= c.last_key));
    assert_eq!(ack.ledger_entries.len(), 2);

    // Exact: only that plate's reads, in time order, with metadata and image.
    let (header, results) = h.search_as("city-pd", search_req("7abc123")).await.unwrap();
    assert_eq!(ids(&results), ["a1", "a2", "a3"]);
    assert!(results.iter().all(|r| r.exact && r.plate_canonical == "7ABC123"));
    let first = results[0].read.as_ref().unwrap();
    assert_eq!(first.camera_id, "cam-1");
    assert_eq!(first.image.len(), 512);
    assert_eq!(first.captured_at, Some(ts(t0() - hours(30))));
    assert_eq!(header.count, 3);
    assert!(!header.truncated);
    // The default window is the whole retention window.
    assert_eq!(header.from, Some(ts(t0() - hours(720))));

    // Folded: the OCR misread too, flagged inexact.
    let mut req = search_req("7ABC123");
    req.folded = true;
    let (_, results) = h.search_as("county-so", req).await.unwrap();
    assert_eq!(ids(&results), ["a1", "a2", "a3", "c1"]);
    let c1 = results.iter().find(|r| r.read.as_ref().unwrap().read_id == "c1").unwrap();
    assert!(!c1.exact);
    assert_eq!(c1.plate_canonical, "7A8C123");
    assert_eq!(results.iter().filter(|r| r.exact).count(), 3);

    // Camera filter and window.
    let mut req = search_req("7ABC123");
    req.camera_id = "cam-1".into();
    req.from = Some(ts(t0() - hours(10)));
    let (_, results) = h.search_as("state-patrol", req).await.unwrap();
    assert_eq!(ids(&results), ["a3"]);

    // Each search is on the ledger with its receipt; the plate only sealed.
    let ledger = h.ledger().await;
    let acc = access_records(&ledger);
    assert_eq!(acc.len(), 3);
    assert!(acc.iter().all(|a| a.decision == Decision::Allow));
    assert_eq!(acc[0].principal, "city-pd");
    assert_eq!(acc[0].receipt.count, 3);
    assert_eq!(
        acc[0].receipt.read_id_hashes,
        ["a1", "a2", "a3"].iter().map(|s| sha256(s)).collect::<Vec<_>>()
    );
    assert_eq!(acc[1].receipt.count, 4);
    assert!(acc[1].reason.contains("OCR-folded"), "{}", acc[1].reason);
    assert_eq!(acc[0].case_number.as_deref(), Some("CASE-2026-0042"));
    assert_eq!(acc[0].purpose, "investigation");
    assert_eq!(acc[2].window_from, t0() - hours(10));
    assert_eq!(h.audit_key.open_plate(&acc[0].plate_ciphertext).unwrap(), "7ABC123");
    assert_eq!(acc[0].plate_blind, acc[1].plate_blind);
    let raw = format!("{ledger:?}") + &serde_json::to_string(&ledger).unwrap();
    assert!(
        !raw.contains("7ABC123") && !raw.contains("7A8C123"),
        "no plaintext plate in the ledger"
    );
    h.stop().await;
}

#[tokio::test]
async fn expired_read_is_never_returned_even_unswept() {
    let h = Harness::start().await;
    h.ingest(vec![
        read("old", "5SAM123", t0() - hours(700), "cam-1"),
        read("new", "5SAM123", t0() - hours(1), "cam-1"),
    ])
    .await
    .unwrap();
    // 30 hours later the first read is past the 720 h retention; no sweeper has run.
    h.clock.advance(hours(30));
    assert_eq!(h.objects("reads").await.len(), 2, "still in the store");
    let mut req = search_req("5SAM123");
    req.from = Some(ts(t0() - hours(5000)));
    let (header, results) = h.search_as("city-pd", req).await.unwrap();
    assert_eq!(ids(&results), ["new"]);
    assert_eq!(header.from, Some(ts(t0() + hours(30) - hours(720))), "window clipped to the cutoff");
    // A window entirely before the cutoff returns nothing (and is still recorded).
    let mut req = search_req("5SAM123");
    req.from = Some(ts(t0() - hours(710)));
    req.to = Some(ts(t0() - hours(695)));
    let (header, results) = h.search_as("city-pd", req).await.unwrap();
    assert!(results.is_empty());
    assert_eq!(header.count, 0);
    assert_eq!(access_records(&h.ledger().await).len(), 2);
    // Ingest refuses a read already past retention, naming the field.
    let ack = h.ingest(vec![read("older", "5SAM123", t0() - hours(800), "cam-1")]).await.unwrap();
    assert_eq!(ack.results[0].status(), ReadStatus::Rejected);
    assert_eq!(ack.results[0].field, "captured_at");
    h.stop().await;
}

/// The seed scenario: out-of-state and federal agencies searched a California department's data
/// for months and nobody could tell what they got. Here they get PERMISSION_DENIED, nothing else,
/// and every attempt is evidence on the ledger.
#[tokio::test]
async fn seed_scenario_out_of_state_and_federal_are_denied_and_recorded() {
    let h = Harness::start().await;
    h.ingest(vec![read("r1", "6TRV512", t0() - hours(2), "cam-7")]).await.unwrap();
    for (who, rule) in [
        ("nv-city-pd", "forbid-search-out-of-state"),
        ("federal-agency", "forbid-search-federal"),
    ] {
        let mut c = h.search_client().await;
        let err = match c.search(h.req(who, search_req("6TRV512"))).await {
            Ok(resp) => {
                // The status may also arrive as the stream's first item: nothing may precede it.
                let mut s = resp.into_inner();
                match s.message().await {
                    Ok(m) => panic!("{who}: got {m:?}"),
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        assert_eq!(err.code(), Code::PermissionDenied, "{who}: {err:?}");
        assert!(err.message().contains(rule), "{who}: {}", err.message());
    }
    // A California agency without a case number: denied by policy, recorded likewise.
    let mut req = search_req("6TRV512");
    req.case_number = String::new();
    let err = h.search_as("city-pd", req).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("forbid-search-without-case-number"), "{}", err.message());
    // And a purpose outside the list.
    let mut req = search_req("6TRV512");
    req.purpose = "curiosity".into();
    let err = h.search_as("county-so", req).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let acc = access_records(&h.ledger().await);
    assert_eq!(acc.len(), 4);
    let registry = lethe::policy::PolicySet::load(&h.policy_dir).unwrap().principals;
    let expect = [
        ("nv-city-pd", "NV", "forbid-search-out-of-state"),
        ("federal-agency", "US", "forbid-search-federal"),
        ("city-pd", "CA", "forbid-search-without-case-number"),
        ("county-so", "CA", "forbid-search-purpose-not-allowed"),
    ];
    for (a, (p, j, rule)) in acc.iter().zip(expect) {
        assert_eq!(a.decision, Decision::Deny);
        assert_eq!(a.principal, p);
        assert_eq!(a.agency, registry.get(p).unwrap().agency, "the record names the agency");
        assert_eq!(a.jurisdiction, j);
        assert!(a.rule.split(',').any(|r| r == rule), "{p}: {} should name {rule}", a.rule);
        assert_eq!(a.receipt.count, 0);
        assert!(a.receipt.read_id_hashes.is_empty());
        assert_eq!(h.audit_key.open_plate(&a.plate_ciphertext).unwrap(), "6TRV512");
    }
    h.stop().await;
}

#[tokio::test]
async fn authentication_and_roles() {
    let h = Harness::start().await;
    let mut ic = h.ingest_client().await;
    let mut sc = h.search_client().await;
    let batch = || proto::IngestRequest {
        batch_id: 1,
        reads: vec![read("x", "1AAA111", t0(), "cam")],
    };
    // No token, a malformed header, an unknown token.
    let e = ic.ingest_batch(tonic::Request::new(batch())).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut r = tonic::Request::new(batch());
    r.metadata_mut().insert("authorization", "Basic abc".parse().unwrap());
    assert_eq!(ic.ingest_batch(r).await.unwrap_err().code(), Code::Unauthenticated);
    let e = ic.ingest_batch(authed(batch(), "lethe_dev_nope")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(!e.message().contains("lethe_dev_nope"), "the token is never echoed");
    let e = sc.search(tonic::Request::new(search_req("1AAA111"))).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    // Roles: a searcher cannot ingest, the gateway and the auditor cannot search.
    let e = ic.ingest_batch(h.req("city-pd", batch())).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("default-deny"), "{}", e.message());
    for who in ["ingest-gateway", "auditor"] {
        let e = h.search_as(who, search_req("1AAA111")).await.unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{who}");
    }
    // The streaming call is authenticated too.
    let out = futures::stream::iter(vec![batch()]);
    let e = ic.ingest_stream(tonic::Request::new(out)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(h.objects("reads").await.is_empty());
    // The role-less search attempts are on the ledger too, and so is the refused ingest (an
    // unauthenticated call has no principal to record).
    let ledger = h.ledger().await;
    let acc = access_records(&ledger);
    assert_eq!(acc.len(), 2);
    assert!(acc.iter().all(|a| a.decision == Decision::Deny && a.rule == "default-deny"));
    let refused: Vec<_> = ledger
        .iter()
        .filter_map(|r| match r {
            RecordBody::Refused(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(
        (
            refused[0].principal.as_str(),
            refused[0].jurisdiction.as_str(),
            refused[0].action.as_str(),
            refused[0].rule.as_str()
        ),
        ("city-pd", "CA", "ingest", "default-deny")
    );
    h.stop().await;
}

#[tokio::test]
async fn malformed_fields_are_named_and_store_nothing() {
    let h = Harness::start().await;
    let mut bad_time = read("t", "2BAD222", t0(), "cam");
    bad_time.captured_at = Some(prost_types::Timestamp { seconds: 0, nanos: -5 });
    let mut no_time = read("n", "2BAD222", t0(), "cam");
    no_time.captured_at = None;
    let mut big = read("i", "2BAD222", t0(), "cam");
    big.image = vec![0; h.limits.max_image_bytes + 1].into();
    let ack = h
        .ingest(vec![
            read("ok", "2GUD222", t0() - hours(1), "cam"),
            read("p", "AB#12", t0(), "cam"),
            read("f", "2BAD222", t0() + hours(1), "cam"),
            read("c", "2BAD222", t0(), " "),
            read("r id", "2BAD222", t0(), "cam"),
            bad_time,
            no_time,
            big,
        ])
        .await
        .unwrap();
    let got: Vec<(ReadStatus, &str)> = ack.results.iter().map(|r| (r.status(), r.field.as_str())).collect();
    assert_eq!(
        got,
        [
            (ReadStatus::Stored, ""),
            (ReadStatus::Rejected, "plate"),
            (ReadStatus::Rejected, "captured_at"),
            (ReadStatus::Rejected, "camera_id"),
            (ReadStatus::Rejected, "read_id"),
            (ReadStatus::Rejected, "captured_at"),
            (ReadStatus::Rejected, "captured_at"),
            (ReadStatus::Rejected, "image"),
        ]
    );
    assert!(ack
        .results
        .iter()
        .all(|r| !r.reason.contains("2BAD222") && !r.reason.contains("AB#12")));
    assert_eq!((ack.stored, ack.rejected), (1, 7));
    assert_eq!(h.objects("reads").await.len(), 1, "nothing of a rejected read is stored");
    assert_eq!(h.objects("ids").await.len(), 1);

    // Search arguments: INVALID_ARGUMENT naming the field, nothing returned, and each attempt on
    // the ledger (an out-of-state agency's malformed attempt included), refused before the policy.
    let before = access_records(&h.ledger().await).len();
    let mut cases = vec![(search_req("#"), "plate"), (search_req(""), "plate")];
    let mut r = search_req("2GUD222");
    r.from = Some(ts(t0()));
    r.to = Some(ts(t0() - hours(1)));
    cases.push((r, "from"));
    let mut r = search_req("2GUD222");
    r.to = Some(prost_types::Timestamp {
        seconds: i64::MAX,
        nanos: 0,
    });
    cases.push((r, "to"));
    let mut r = search_req("2GUD222");
    r.case_number = "x".repeat(1000);
    cases.push((r, "case_number"));
    let n = cases.len();
    let who = |i: usize| if i == 1 { "nv-city-pd" } else { "city-pd" };
    for (i, (req, field)) in cases.into_iter().enumerate() {
        let e = h.search_as(who(i), req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
        assert!(e.message().starts_with(&format!("{field}:")), "{field}: {}", e.message());
    }
    let acc = access_records(&h.ledger().await);
    assert_eq!(acc.len(), before + n, "every malformed attempt is recorded");
    let fields = ["plate", "plate", "from", "to", "case_number"];
    for (i, (a, field)) in acc[before..].iter().zip(fields).enumerate() {
        assert_eq!(a.principal, who(i));
        assert_eq!(a.decision, Decision::Deny);
        assert_eq!(a.rule, "invalid-request");
        assert!(a.reason.contains(&format!("{field}:")), "{}", a.reason);
        assert!(!a.reason.contains("2GUD222"), "no plate in the reason: {}", a.reason);
        assert_eq!(a.receipt.count, 0);
    }
    assert_eq!(acc[before + 1].jurisdiction, "NV");
    assert_eq!(
        h.audit_key.open_plate(&acc[before].plate_ciphertext).unwrap(),
        "#",
        "the plate as typed, encrypted"
    );
    assert_eq!(h.audit_key.open_plate(&acc[before + 2].plate_ciphertext).unwrap(), "2GUD222");
    assert_eq!(
        acc[before + 4].case_number.as_deref().map(str::len),
        Some(lethe::api::search::MAX_LABEL_LEN),
        "a long field is cut, not dropped"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_read_of_a_swept_day_is_rejected_alone() {
    let h = Harness::start().await;
    // The sweeper closed a day within retention (say, forced past a skewed clock): its key is
    // destroyed. A read of that day is refused on its own field; the rest of the batch is stored.
    let swept = t0() - hours(24 * 3);
    h.reads.shred_day(swept.date_naive(), t0()).await.unwrap();
    let ack = h
        .ingest(vec![
            read("s1", "3SWP333", swept, "cam"),
            read("s2", "3SWP333", t0() - hours(1), "cam"),
        ])
        .await
        .unwrap();
    let got: Vec<(ReadStatus, &str)> = ack.results.iter().map(|r| (r.status(), r.field.as_str())).collect();
    assert_eq!(got, [(ReadStatus::Rejected, "captured_at"), (ReadStatus::Stored, "")]);
    assert!(ack.results[0].reason.contains("swept"), "{}", ack.results[0].reason);
    assert_eq!(h.objects("reads").await.len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn message_size_limit_on_unary_and_streaming() {
    // 4 MiB + 1 byte images pass when the limits allow them…
    let h = Harness::start().await;
    let mut big = read("big-1", "4MIB001", t0() - hours(1), "cam");
    big.image = vec![7; (4 << 20) + 1].into();
    let ack = h.ingest(vec![big.clone()]).await.unwrap();
    assert_eq!(ack.stored, 1, "{ack:?}");
    let mut big2 = big.clone();
    big2.read_id = "big-2".into();
    let mut ic = h.ingest_client().await;
    let out = futures::stream::iter(vec![proto::IngestRequest {
        batch_id: 9,
        reads: vec![big2],
    }]);
    let mut acks = ic.ingest_stream(h.req("ingest-gateway", out)).await.unwrap().into_inner();
    let a = acks.message().await.unwrap().unwrap();
    assert_eq!((a.batch_id, a.stored), (9, 1));
    let (_, results) = h.search_as("city-pd", search_req("4MIB001")).await.unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].read.as_ref().unwrap().image.len(), (4 << 20) + 1);
    h.stop().await;

    // …and a message over the server's limit is RESOURCE_EXHAUSTED, with nothing stored.
    let h = Harness::start_with(ApiLimits {
        max_message_bytes: 1 << 20,
        ..ApiLimits::default()
    })
    .await;
    let mut big = read("big", "4MIB001", t0() - hours(1), "cam");
    big.image = vec![7; 2 << 20].into();
    let e = h.ingest(vec![big.clone()]).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    let mut ic = h.ingest_client().await;
    let out = futures::stream::iter(vec![proto::IngestRequest {
        batch_id: 1,
        reads: vec![big],
    }]);
    let e = match ic.ingest_stream(h.req("ingest-gateway", out)).await {
        Ok(r) => r.into_inner().message().await.unwrap_err(),
        Err(e) => e,
    };
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(h.objects("reads").await.is_empty());
    h.stop().await;
}

#[tokio::test]
async fn store_down_is_unavailable_and_stores_nothing() {
    let h = Harness::start().await;
    h.ingest(vec![read("s1", "3DWN333", t0() - hours(1), "cam")]).await.unwrap();
    h.fault.down();
    let e = h
        .ingest(vec![
            read("s2", "3DWN333", t0() - hours(1), "cam"),
            read("", "3DWN334", t0(), "cam"),
        ])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    let e = h.search_as("city-pd", search_req("3DWN333")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    h.fault.clear();
    assert_eq!(h.objects("reads").await.len(), 1, "nothing partial stored");
    let (_, results) = h.search_as("city-pd", search_req("3DWN333")).await.unwrap();
    assert_eq!(ids(&results), ["s1"]);
    h.stop().await;
}

#[tokio::test]
async fn no_ledger_record_means_no_results_and_no_ack() {
    let h = Harness::start().await;
    h.ingest(vec![read("l1", "9LED999", t0() - hours(1), "cam")]).await.unwrap();
    h.fault.fail(Op::Put, "ledger/");
    // Search: UNAVAILABLE, and not a single message before it.
    let mut c = h.search_client().await;
    let e = match c.search(h.req("city-pd", search_req("9LED999"))).await {
        Ok(resp) => match resp.into_inner().message().await {
            Ok(m) => panic!("a message was sent without its access record: {m:?}"),
            Err(e) => e,
        },
        Err(e) => e,
    };
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    // A denied search cannot be recorded either: still no answer but UNAVAILABLE; nor can a
    // malformed one.
    let e = h.search_as("nv-city-pd", search_req("9LED999")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    let e = h.search_as("nv-city-pd", search_req("")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    // Nor an ingest refused by the policy.
    let mut ic = h.ingest_client().await;
    let refused = proto::IngestRequest {
        batch_id: 9,
        reads: vec![read("l9", "9LED996", t0() - hours(1), "cam")],
    };
    let e = ic.ingest_batch(h.req("city-pd", refused)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    // Ingest: no commit record, no acknowledgement, and what the batch stored is removed again.
    let e = h
        .ingest(vec![
            read("", "9LED998", t0() - hours(1), "cam"),
            read("l2", "9LED997", t0() - hours(1), "cam"),
        ])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert_eq!(h.objects("reads").await.len(), 1);
    assert_eq!(h.objects("ids").await.len(), 1);
    // The retry stores and commits it.
    h.fault.clear();
    let ack = h.ingest(vec![read("l2", "9LED997", t0() - hours(1), "cam")]).await.unwrap();
    assert_eq!(statuses(&ack), [ReadStatus::Stored]);
    let c = commits(&h.ledger().await);
    assert_eq!(c.iter().map(|c| c.count).collect::<Vec<_>>(), [1, 1]);
    h.stop().await;
}

#[tokio::test]
async fn same_batch_twice_is_stored_once() {
    let h = Harness::start().await;
    let batch: Vec<proto::Read> = (0..10)
        .map(|i| read(&format!("gw-{i}"), &format!("1IDM{i:03}"), t0() - hours(i + 1), "cam"))
        .collect();
    let a = h.ingest(batch.clone()).await.unwrap();
    assert_eq!(a.stored, 10);
    let b = h.ingest(batch.clone()).await.unwrap();
    assert_eq!((b.stored, b.duplicates), (0, 10));
    assert!(statuses(&b).iter().all(|s| *s == ReadStatus::Duplicate));
    assert_eq!(h.objects("reads").await.len(), 10);
    // Same id, different content: refused on `read_id`, the original untouched.
    let mut changed = batch[0].clone();
    changed.camera_id = "other-cam".into();
    let c = h.ingest(vec![changed]).await.unwrap();
    assert_eq!(c.results[0].status(), ReadStatus::Rejected);
    assert_eq!(c.results[0].field, "read_id");
    let (_, results) = h.search_as("city-pd", search_req("1IDM000")).await.unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].read.as_ref().unwrap().camera_id, "cam");
    h.stop().await;
}

#[tokio::test]
async fn a_cut_stream_leaves_every_acknowledged_read_stored() {
    let h = Harness::start().await;
    let batch = |n: u64| proto::IngestRequest {
        batch_id: n,
        reads: (0..20)
            .map(|i| {
                read(
                    &format!("b{n}-{i}"),
                    "6CUT600",
                    t0() - hours(1) + chrono::Duration::seconds((n * 100 + i) as i64),
                    "cam",
                )
            })
            .collect(),
    };
    let mut ic = h.ingest_client().await;
    let (tx, rx) = tokio::sync::mpsc::channel::<proto::IngestRequest>(4);
    let mut acks = ic
        .ingest_stream(h.req("ingest-gateway", tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();
    let mut acked: Vec<String> = Vec::new();
    for n in 1..=2 {
        tx.send(batch(n)).await.unwrap();
        let a = acks.message().await.unwrap().unwrap();
        assert_eq!((a.batch_id, a.stored), (n, 20));
        acked.extend(a.results.iter().map(|r| r.read_id.clone()));
    }
    // Batch 3 goes out, and the connection is cut before its acknowledgement.
    tx.send(batch(3)).await.unwrap();
    drop(acks);
    drop(tx);
    drop(ic);

    // Every acknowledged read is stored, and committed.
    let (_, results) = h.search_as("city-pd", search_req("6CUT600")).await.unwrap();
    let found: std::collections::BTreeSet<String> = ids(&results).into_iter().collect();
    assert!(acked.iter().all(|id| found.contains(id)));
    let committed: u64 = commits(&h.ledger().await).iter().map(|c| c.count).sum();
    assert!(committed >= 40);
    // The client claims only what was acknowledged; re-sending the unacknowledged batch is safe.
    let mut ic = h.ingest_client().await;
    let out = futures::stream::iter(vec![batch(3)]);
    let mut acks = ic.ingest_stream(h.req("ingest-gateway", out)).await.unwrap().into_inner();
    let a = acks.message().await.unwrap().unwrap();
    assert_eq!(a.stored + a.duplicates, 20);
    assert!(acks.message().await.unwrap().is_none());
    let (_, results) = h.search_as("city-pd", search_req("6CUT600")).await.unwrap();
    assert_eq!(results.len(), 60, "each read stored exactly once");
    h.stop().await;
}

#[tokio::test]
async fn batches_sent_ahead_on_one_stream_are_acknowledged_in_order_then_the_error() {
    // A client may send several batches without waiting: the server works on a few at once and
    // acknowledges them in the order sent; a bad message after them ends the stream only after
    // every batch before it was acknowledged.
    let h = Harness::start_with(ApiLimits {
        max_message_bytes: 1 << 20,
        ..ApiLimits::default()
    })
    .await;
    let batch = |n: u64| proto::IngestRequest {
        batch_id: n,
        reads: (0..10)
            .map(|i| {
                read(
                    &format!("p{n}-{i}"),
                    "7PIPE70",
                    t0() - hours(2) + chrono::Duration::seconds((n * 100 + i) as i64),
                    "cam",
                )
            })
            .collect(),
    };
    let mut oversize = read("too-big", "7PIPE70", t0() - hours(1), "cam");
    oversize.image = vec![7; 2 << 20].into();
    let mut sent: Vec<proto::IngestRequest> = (1..=6).map(batch).collect();
    sent.push(proto::IngestRequest {
        batch_id: 7,
        reads: vec![oversize],
    });
    let mut ic = h.ingest_client().await;
    let mut acks = ic
        .ingest_stream(h.req("ingest-gateway", futures::stream::iter(sent)))
        .await
        .unwrap()
        .into_inner();
    let mut order = Vec::new();
    let e = loop {
        match acks.message().await {
            Ok(Some(a)) => {
                assert_eq!(a.stored, 10, "{a:?}");
                order.push(a.batch_id);
            }
            Ok(None) => panic!("the stream ended without the oversize message's error"),
            Err(e) => break e,
        }
    };
    assert_eq!(order, vec![1, 2, 3, 4, 5, 6], "acknowledged in the order sent");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    let (_, results) = h.search_as("city-pd", search_req("7PIPE70")).await.unwrap();
    assert_eq!(results.len(), 60, "each acknowledged read stored once, nothing of the bad one");
    let committed: u64 = commits(&h.ledger().await).iter().map(|c| c.count).sum();
    assert_eq!(committed, 60);
    h.stop().await;
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    let h = Harness::start().await;
    let mut hc = tonic_health::pb::health_client::HealthClient::new(h.channel().await);
    for svc in ["", "lethe.v1.Ingest", "lethe.v1.Search"] {
        let r = hc
            .check(tonic_health::pb::HealthCheckRequest { service: svc.into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status(), tonic_health::pb::health_check_response::ServingStatus::Serving, "{svc}");
    }
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut rc = ServerReflectionClient::new(h.channel().await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut s = rc
        .server_reflection_info(futures::stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let resp = s.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(l)) = resp.message_response else {
        panic!("{resp:?}")
    };
    let names: Vec<String> = l.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"lethe.v1.Ingest".to_string()) && names.contains(&"lethe.v1.Search".to_string()),
        "{names:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_capped_search_says_so_and_its_receipt_lists_exactly_what_was_sent() {
    let h = Harness::start_with(ApiLimits {
        max_search_results: 2,
        ..ApiLimits::default()
    })
    .await;
    let reads = (0..3i64)
        .map(|i| read(&format!("cap-{i}"), "4CAP444", t0() - hours(3 - i), "cam"))
        .collect();
    assert_eq!(h.ingest(reads).await.unwrap().stored, 3);
    let (header, results) = h.search_as("city-pd", search_req("4CAP444")).await.unwrap();
    assert!(header.truncated);
    assert_eq!(header.count, 2);
    assert_eq!(ids(&results), ["cap-0", "cap-1"]);
    let acc = access_records(&h.ledger().await);
    assert_eq!(acc[0].receipt.count, 2);
    assert_eq!(acc[0].receipt.read_id_hashes, vec![sha256("cap-0"), sha256("cap-1")]);
    assert!(acc[0].reason.contains("capped at 2"), "{}", acc[0].reason);
    h.stop().await;
}

/// Reads of one plate over three capture days, each with its own image, plus other plates' reads
/// in between.
fn spread_reads(plate: &str, n: i64) -> Vec<proto::Read> {
    let mut reads = Vec::new();
    for i in 0..n {
        let mut r = read(
            &format!("sp-{i:02}"),
            plate,
            t0() - hours(60) + hours(i * 60 / n),
            &format!("cam-{}", i % 3),
        );
        r.image = (0..4096).map(|b| (b as u8).wrapping_mul(i as u8 + 1)).collect();
        reads.push(r);
        reads.push(read(
            &format!("other-{i:02}"),
            "8OTH888",
            t0() - hours(59) + hours(i * 60 / n),
            "cam-9",
        ));
    }
    reads
}

/// Sends a search and reads the stream to its end: the header, the results, and the status the
/// stream ended with (None: it ended cleanly).
async fn search_to_end(h: &Harness, req: proto::SearchRequest) -> (proto::SearchHeader, Vec<proto::SearchResult>, Option<tonic::Status>) {
    use proto::search_response::Item;
    let mut c = h.search_client().await;
    let mut s = c.search(h.req("city-pd", req)).await.unwrap().into_inner();
    let header = match s.message().await.unwrap().and_then(|m| m.item) {
        Some(Item::Header(h)) => h,
        other => panic!("the header comes first: {other:?}"),
    };
    let mut results = Vec::new();
    loop {
        match s.message().await {
            Ok(Some(m)) => match m.item {
                Some(Item::Result(r)) => results.push(r),
                other => panic!("only results follow the header: {other:?}"),
            },
            Ok(None) => return (header, results, None),
            Err(e) => return (header, results, Some(e)),
        }
    }
}

/// Guards "memory stays flat whatever the size of a search": results past the search buffer are
/// fetched again after the access record is written. Whatever the buffer, the client must get the
/// very same results, in the same order, with their images, and the receipt must list them.
#[tokio::test]
async fn a_search_past_its_buffer_returns_the_same_results_and_receipt() {
    let mut got = Vec::new();
    // No buffer (every result fetched again), a buffer of about three results (some of each), and
    // the default (every result kept).
    for budget in [1, 3 * 5000, ApiLimits::default().search_buffer_bytes] {
        let h = Harness::start_with(ApiLimits {
            search_buffer_bytes: budget,
            ..ApiLimits::default()
        })
        .await;
        assert_eq!(h.ingest(spread_reads("5BUF555", 24)).await.unwrap().stored, 48);
        let (header, results, end) = search_to_end(&h, search_req("5BUF555")).await;
        assert!(end.is_none(), "budget {budget}: {end:?}");
        assert_eq!(header.count as usize, results.len(), "budget {budget}");
        assert!(!header.truncated);
        let acc = access_records(&h.ledger().await);
        assert_eq!(acc.len(), 1);
        assert_eq!(acc[0].receipt.count, header.count as u64);
        assert_eq!(
            acc[0].receipt.read_id_hashes,
            ids(&results).iter().map(|id| sha256(id)).collect::<Vec<_>>(),
            "budget {budget}: the receipt lists exactly what was sent, in order"
        );
        got.push(results);
        h.stop().await;
    }
    let expected: Vec<String> = (0..24).map(|i| format!("sp-{i:02}")).collect();
    assert_eq!(ids(&got[0]), expected, "capture-time order across days");
    for (i, r) in got[0].iter().enumerate() {
        let read = r.read.as_ref().unwrap();
        assert_eq!(read.image.len(), 4096, "{i}: the image is sent");
        assert_eq!(read.image[1], (i as u8).wrapping_add(1), "{i}: its own image");
        assert!(r.exact && r.plate_canonical == "5BUF555");
    }
    assert_eq!(got[0], got[1], "partly re-fetched = all re-fetched");
    assert_eq!(got[0], got[2], "all re-fetched = all buffered");
}

/// Guards the receipt's promise when a re-fetch fails after the record is written: the stream must
/// end with an error (never quietly fewer results than the header counts), and the record stands.
#[tokio::test]
async fn a_store_failure_after_the_record_ends_the_stream_unavailable() {
    let h = Harness::start_with(ApiLimits {
        search_buffer_bytes: 1,
        ..ApiLimits::default()
    })
    .await;
    assert_eq!(h.ingest(spread_reads("6GET666", 6)).await.unwrap().stored, 12);
    // Every read GET fails from the moment the search's access record is put into the ledger.
    h.fault.fail_after(Op::Put, "ledger/", Op::Get, "reads/", Fault::Error);
    let (header, results, end) = search_to_end(&h, search_req("6GET666")).await;
    assert_eq!(header.count, 6);
    assert!(results.is_empty(), "nothing could be fetched: {}", results.len());
    let e = end.expect("the stream ends with an error, not short");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(
        e.message().contains(&format!("access record #{}", header.access_entry)),
        "{}",
        e.message()
    );
    // The record is on the ledger with its full receipt.
    let acc = access_records(&h.ledger().await);
    assert_eq!(acc.len(), 1);
    assert_eq!(acc[0].decision, Decision::Allow);
    assert_eq!(acc[0].receipt.count, 6);
    let want: Vec<[u8; 32]> = (0..6).map(|i| sha256(&format!("sp-{i:02}"))).collect();
    assert_eq!(acc[0].receipt.read_id_hashes, want);
    h.fault.clear();
    let (_, results, end) = search_to_end(&h, search_req("6GET666")).await;
    assert!(end.is_none());
    assert_eq!(results.len(), 6);
    h.stop().await;

    // With the default buffer the same search keeps every result and needs no GET after its record.
    let h = Harness::start().await;
    assert_eq!(h.ingest(spread_reads("6GET666", 6)).await.unwrap().stored, 12);
    h.fault.fail_after(Op::Put, "ledger/", Op::Get, "reads/", Fault::Error);
    let (header, results, end) = search_to_end(&h, search_req("6GET666")).await;
    assert!(end.is_none(), "{end:?}");
    assert_eq!((header.count, results.len()), (6, 6));
    h.stop().await;
}

/// Guards the case of a sweep deleting a read between the access record and its sending: ABORTED,
/// saying so, after the results that were buffered.
#[tokio::test]
async fn a_read_removed_after_the_record_ends_the_stream_aborted() {
    let h = Harness::start_with(ApiLimits {
        search_buffer_bytes: 3 * 5000,
        ..ApiLimits::default()
    })
    .await;
    assert_eq!(h.ingest(spread_reads("7DEL777", 8)).await.unwrap().stored, 16);
    h.fault.fail_after(Op::Put, "ledger/", Op::Get, "reads/", Fault::Gone);
    let (header, results, end) = search_to_end(&h, search_req("7DEL777")).await;
    assert_eq!(header.count, 8);
    let e = end.expect("the stream ends with an error, not short");
    assert_eq!(e.code(), Code::Aborted, "{e:?}");
    assert!(
        e.message().contains("removed") && e.message().contains("after the access record"),
        "{}",
        e.message()
    );
    // The buffered results went out first, in order; the rest could not.
    assert!(!results.is_empty() && results.len() < 8, "{}", results.len());
    let expected: Vec<String> = (0..results.len()).map(|i| format!("sp-{i:02}")).collect();
    assert_eq!(ids(&results), expected);
    assert!(
        e.message().contains(&format!("{} of 8 results were sent", results.len())),
        "{}",
        e.message()
    );
    assert_eq!(access_records(&h.ledger().await)[0].receipt.count, 8);
    h.stop().await;
}

#[tokio::test]
async fn puts_in_flight_are_bounded_across_the_whole_server() {
    // Eight clients at once, 32 puts allowed per batch, 8 server-wide: a slow store never sees
    // more than 8 puts at a time (without the shared bound it would see up to 256), and every
    // read is still stored.
    let h = Harness::start_with(ApiLimits {
        ingest_concurrency: 32,
        max_ingest_puts: 8,
        ..ApiLimits::default()
    })
    .await;
    h.fault.slow_puts(std::time::Duration::from_millis(5));
    // The reads' objects (the ledger and day keys are written outside the ingest bound).
    h.fault.count_puts("reads/");
    let calls = (0..8u64).map(|c| {
        let reads = (0..32)
            .map(|i| {
                read(
                    &format!("bound-{c}-{i}"),
                    "8BOUND8",
                    t0() - hours(3) + chrono::Duration::seconds((c * 100 + i) as i64),
                    "cam",
                )
            })
            .collect();
        h.ingest(reads)
    });
    let acks = futures::future::join_all(calls).await;
    let stored: u32 = acks.into_iter().map(|a| a.unwrap().stored).sum();
    assert_eq!(stored, 256);
    let peak = h.fault.max_puts_in_flight();
    assert!(peak <= 8, "{peak} puts were in flight at once, past the server-wide bound of 8");
    assert!(
        peak >= 2,
        "the puts never overlapped ({peak}); the test would not see a missing bound"
    );
    h.stop().await;
}
