//! The tonic server: the Ingest and Search services, the standard health service and server
//! reflection, on a listener the caller bound, until the caller's shutdown future resolves.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::codegen::Service;
use tonic::server::NamedService;
use tonic::{Request, Response, Status, Streaming};

use super::ports::Action;
use super::proto::ingest_server::{Ingest, IngestServer};
use super::proto::search_server::{Search, SearchServer};
use super::{ingest, proto, search, ApiState};

/// How many batches of one ingest stream are in progress at once.
pub const INGEST_PIPELINE: usize = 2;

/// HTTP/2 stream flow-control window (bytes).
pub const STREAM_WINDOW: u32 = 4 << 20;
/// HTTP/2 connection flow-control window (bytes).
pub const CONNECTION_WINDOW: u32 = 16 << 20;

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Server reflection could not load the API's descriptor set.
    #[error("server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The Ingest and Search services over one [`ApiState`].
#[derive(Debug, Clone)]
pub struct ApiService {
    state: ApiState,
}

impl ApiService {
    /// The services over `state`.
    pub fn new(state: ApiState) -> Self {
        Self { state }
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Ingest for ApiService {
    async fn ingest_batch(&self, request: Request<proto::IngestRequest>) -> Result<Response<proto::IngestResponse>, Status> {
        let principal = self.state.principal(request.metadata(), Action::Ingest).await?;
        let ack = ingest::ingest_batch(&self.state, &principal, request.into_inner()).await?;
        Ok(Response::new(ack))
    }

    type IngestStreamStream = BoxStream<proto::IngestResponse>;

    async fn ingest_stream(&self, request: Request<Streaming<proto::IngestRequest>>) -> Result<Response<Self::IngestStreamStream>, Status> {
        let principal = self.state.principal(request.metadata(), Action::Ingest).await?;
        let mut inbound = request.into_inner();
        let state = self.state.clone();
        // Up to INGEST_PIPELINE batches of one stream are in progress at once (the next one is
        // stored while the previous one waits for its ledger commit), acknowledged in order.
        // Each runs in a task of its own and to its end even if the stream fails or the client
        // goes away: a batch is never cut off between its puts and its ingest commit.
        let (tx, rx) = mpsc::channel(INGEST_PIPELINE);
        tokio::spawn(async move {
            let mut pending: VecDeque<JoinHandle<Result<proto::IngestResponse, Status>>> = VecDeque::new();
            let mut reading = true;
            let mut failed: Option<Status> = None;
            loop {
                tokio::select! {
                    biased;
                    done = async { pending.front_mut().expect("guarded").await }, if !pending.is_empty() => {
                        pending.pop_front();
                        let ack = done.unwrap_or_else(|e| Err(Status::internal(format!("ingest task failed: {e}"))));
                        let stop = ack.is_err();
                        if tx.send(ack).await.is_err() || stop {
                            break;
                        }
                    }
                    msg = inbound.message(), if reading && pending.len() < INGEST_PIPELINE => match msg {
                        Ok(Some(batch)) => {
                            let (state, principal) = (state.clone(), principal.clone());
                            pending.push_back(tokio::spawn(async move {
                                ingest::ingest_batch(&state, &principal, batch).await.map_err(|e| e.into_status())
                            }));
                        }
                        Ok(None) => reading = false,
                        Err(status) => {
                            // Oversize or malformed message, or the client went away: the batches
                            // before it are acknowledged first, then the stream ends with this.
                            reading = false;
                            failed = Some(super::error::from_transport(&status).into_status());
                        }
                    },
                    else => {
                        if let Some(status) = failed.take() {
                            let _ = tx.send(Err(status)).await;
                        }
                        break;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[tonic::async_trait]
impl Search for ApiService {
    type SearchStream = BoxStream<proto::SearchResponse>;

    async fn search(&self, request: Request<proto::SearchRequest>) -> Result<Response<Self::SearchStream>, Status> {
        // Any authenticated principal reaches the policy decision, so that a search by one
        // without the search role is on the ledger too.
        let principal = self.state.authenticate(request.metadata())?;
        // The access record is written when this returns; the results (some fetched again from
        // the store as the client reads) follow the header, and a read that can no longer be sent
        // ends the stream with its status.
        let out = search::search(&self.state, &principal, request.into_inner()).await?;
        let header = proto::SearchResponse {
            item: Some(proto::search_response::Item::Header(out.header)),
        };
        let results = out.results.map(|r| {
            r.map(|r| proto::SearchResponse {
                item: Some(proto::search_response::Item::Result(r)),
            })
            .map_err(super::ApiError::into_status)
        });
        let all = futures::stream::once(futures::future::ready(Ok(header))).chain(results);
        Ok(Response::new(all.boxed()))
    }
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes in-flight calls and
/// returns. Health (`grpc.health.v1.Health`) reports both services serving; reflection
/// (`grpc.reflection.v1`) describes them. Messages larger than the configured limit are refused
/// with RESOURCE_EXHAUSTED, on unary and streaming calls alike.
pub async fn run(listener: TcpListener, state: ApiState, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServerError> {
    let max = state.limits.max_message_bytes;
    let svc = ApiService::new(state);
    let ingest = OversizeIsResourceExhausted(
        IngestServer::new(svc.clone())
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    );
    let search = OversizeIsResourceExhausted(SearchServer::new(svc).max_decoding_message_size(max).max_encoding_message_size(max));

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<IngestServer<ApiService>>().await;
    reporter.set_serving::<SearchServer<ApiService>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;

    let incoming = TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|s| {
            let _ = s.set_nodelay(true);
        })
    });
    // Wider HTTP/2 flow-control windows than the 64 KiB default, so a batch of images is not
    // paced by window updates.
    tonic::transport::Server::builder()
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        .add_service(health)
        .add_service(reflection)
        .add_service(ingest)
        .add_service(search)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Rewrites tonic's OUT_OF_RANGE "message length too large" answer to a unary request into
/// RESOURCE_EXHAUSTED, the code the API promises (and the one gRPC specifies for a message over
/// the receiver's limit). tonic answers a request it cannot decode with a trailers-only response,
/// so the status is in the response headers. Streaming calls map it in the handler.
#[derive(Debug, Clone)]
struct OversizeIsResourceExhausted<S>(S);

impl<S, B> Service<http::Request<B>> for OversizeIsResourceExhausted<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let fut = self.0.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            let h = resp.headers_mut();
            let oversize = h.get("grpc-status").and_then(|v| v.to_str().ok()) == Some("11")
                && h.get("grpc-message")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|m| super::error::is_too_large(tonic::Code::OutOfRange, m));
            if oversize {
                h.insert("grpc-status", http::HeaderValue::from_static("8"));
            }
            Ok(resp)
        })
    }
}

impl<S: NamedService> NamedService for OversizeIsResourceExhausted<S> {
    const NAME: &'static str = S::NAME;
}
