//! A lethe server on 127.0.0.1:0 over a fault-injecting in-memory store, and a real gRPC client.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::TryStreamExt;
use lethe::api::proto::ingest_client::IngestClient;
use lethe::api::proto::search_client::SearchClient;
use lethe::api::proto::{self, search_response::Item};
use lethe::api::{server, ApiLimits, ApiState, LedgerWriter};
use lethe::clock::{ManualClock, SharedClock};
use lethe::crypto::{AuditKey, Kek};
use lethe::ledger::{Ledger, LedgerConfig, Record, RecordBody, SigningKey};
use lethe::policy::{ensure_dev_tokens, PolicySet};
use lethe::store::fault::FaultStore;
use lethe::store::{ReadStore, ReadStoreOptions};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;
use tonic::transport::Channel;
use tonic::{Request, Status};

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap()
}

pub struct Harness {
    pub addr: SocketAddr,
    pub tokens: BTreeMap<String, String>,
    pub fault: Arc<FaultStore>,
    pub ledger: Ledger,
    pub policy_dir: std::path::PathBuf,
    _keys: tempfile::TempDir,
    pub clock: ManualClock,
    pub audit_key: AuditKey,
    pub limits: ApiLimits,
    /// The server's read store (a clone: the same key cache).
    pub reads: ReadStore,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(ApiLimits::default()).await
    }

    pub async fn start_with(limits: ApiLimits) -> Self {
        Self::start_on(Arc::new(InMemory::new()), limits).await
    }

    /// A server over `backend` (wrapped in a [`FaultStore`]).
    pub async fn start_on(backend: Arc<dyn ObjectStore>, limits: ApiLimits) -> Self {
        let fault = Arc::new(FaultStore::new(backend));
        let store: Arc<dyn ObjectStore> = fault.clone();
        let reads = ReadStore::open(
            store.clone(),
            Kek::ephemeral(),
            ReadStoreOptions {
                blind_bits: 8,
                object_metadata: false,
            },
        )
        .await
        .unwrap();
        // The shipped policy folder: principals, the California rule, 720 h retention.
        let policy_dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"));
        let policies = PolicySet::load(&policy_dir).unwrap();
        let keys = tempfile::tempdir().unwrap();
        let dev = ensure_dev_tokens(&policies.principals, &keys.path().join("dev-tokens.json")).unwrap();
        let tokens: BTreeMap<String, String> = dev
            .ids()
            .map(|id| (id.to_string(), dev.get(id).unwrap().expose().to_string()))
            .collect();
        let ledger = Ledger::open(store, LedgerConfig::default(), SigningKey::generate("lethe.test/ledger").unwrap())
            .await
            .unwrap();
        let clock = ManualClock::new(t0());
        let shared: SharedClock = Arc::new(clock.clone());
        let audit_key = AuditKey::ephemeral();
        let state = ApiState {
            reads: reads.clone(),
            auth: Arc::new(policies.authenticator(Some(&dev))),
            policy: Arc::new(policies.access),
            ledger: Arc::new(LedgerWriter::new(ledger.clone(), shared.clone(), "serve@test")),
            audit_key: audit_key.clone(),
            retention: policies.retention,
            clock: shared,
            ingest_slots: ApiState::ingest_slots(&limits),
            limits,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server::run(listener, state, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            addr,
            tokens,
            fault,
            reads,
            ledger,
            policy_dir,
            _keys: keys,
            clock,
            audit_key,
            limits,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn ingest_client(&self) -> IngestClient<Channel> {
        IngestClient::new(self.channel().await)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    pub async fn search_client(&self) -> SearchClient<Channel> {
        SearchClient::new(self.channel().await).max_decoding_message_size(64 << 20)
    }

    pub fn token(&self, id: &str) -> &str {
        &self.tokens[id]
    }

    pub fn req<T>(&self, id: &str, msg: T) -> Request<T> {
        authed(msg, self.token(id))
    }

    pub async fn ingest(&self, reads: Vec<proto::Read>) -> Result<proto::IngestResponse, Status> {
        let mut c = self.ingest_client().await;
        c.ingest_batch(self.req("ingest-gateway", proto::IngestRequest { batch_id: 1, reads }))
            .await
            .map(|r| r.into_inner())
    }

    pub async fn search_as(&self, id: &str, req: proto::SearchRequest) -> Result<(proto::SearchHeader, Vec<proto::SearchResult>), Status> {
        let mut c = self.search_client().await;
        collect(c.search(self.req(id, req)).await?.into_inner()).await
    }

    /// Every ledger record, decoded.
    pub async fn ledger(&self) -> Vec<RecordBody> {
        let entries: Vec<_> = self.ledger.reader().entries(0, u64::MAX).try_collect().await.unwrap();
        entries.iter().map(|e| Record::decode(&e.bytes).unwrap().body).collect()
    }

    /// Every object under `prefix` in the store.
    pub async fn objects(&self, prefix: &str) -> Vec<Path> {
        let p = Path::from(prefix);
        self.fault.list(Some(&p)).map_ok(|m| m.location).try_collect().await.unwrap()
    }

    pub async fn stop(mut self) {
        let _ = self.shutdown.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }
}

pub fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

pub async fn collect(mut s: tonic::Streaming<proto::SearchResponse>) -> Result<(proto::SearchHeader, Vec<proto::SearchResult>), Status> {
    let mut header = None;
    let mut results = Vec::new();
    while let Some(m) = s.message().await? {
        match m.item.expect("item") {
            Item::Header(h) => {
                assert!(header.is_none(), "one header");
                assert!(results.is_empty(), "header first");
                header = Some(h);
            }
            Item::Result(r) => results.push(r),
        }
    }
    Ok((header.expect("a header"), results))
}

pub fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    lethe::api::convert::to_timestamp(t)
}

pub fn read(id: &str, plate: &str, at: DateTime<Utc>, camera: &str) -> proto::Read {
    proto::Read {
        read_id: id.into(),
        plate: plate.into(),
        region: "CA".into(),
        captured_at: Some(ts(at)),
        camera_id: camera.into(),
        position: Some(proto::Position { lat: 37.8, lon: -122.27 }),
        confidence: Some(0.93),
        image_type: "image/jpeg".into(),
        image: vec![0xAB; 512].into(),
        ..Default::default()
    }
}

pub fn search_req(plate: &str) -> proto::SearchRequest {
    proto::SearchRequest {
        plate: plate.into(),
        purpose: "investigation".into(),
        case_number: "CASE-2026-0042".into(),
        ..Default::default()
    }
}

pub fn hours(h: i64) -> Duration {
    Duration::hours(h)
}
