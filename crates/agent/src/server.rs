//! The agent's side: an axum router with one RPC endpoint, served over
//! TLS (its own certificate) with HTTP/2, every request authenticated by
//! the enrolment secret.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use ironidc_core::engine::{Engine, HostContext, ProgressSink};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::identity::Identity;
use crate::wire::{CallResult, EngineCall, Line, Reply, WireError, ENGINE_PATH};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Clone)]
struct AgentState {
    engine: Arc<dyn Engine>,
    identity: Arc<Identity>,
}

/// The peer of a connection, for the log line of a refused request.
#[derive(Clone, Copy)]
struct Peer(SocketAddr);

/// The agent's routes over `engine`, guarded by `identity`'s secret.
pub fn router(engine: Arc<dyn Engine>, identity: Arc<Identity>) -> Router {
    let state = AgentState { engine, identity };
    Router::new()
        .route(ENGINE_PATH, post(call))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .with_state(state)
}

async fn authenticate(State(state): State<AgentState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented.is_some_and(|s| state.identity.secret_matches(s)) {
        return next.run(req).await;
    }
    let peer = req.extensions().get::<Peer>().map(|p| p.0.to_string());
    tracing::warn!(
        peer = peer.as_deref().unwrap_or("?"),
        path = %req.uri().path(),
        "refused a request without the enrolment secret"
    );
    (
        StatusCode::UNAUTHORIZED,
        "the enrolment secret is missing or wrong",
    )
        .into_response()
}

/// Forwards progress reports into the reply stream; a report after the
/// client went away is dropped.
struct ChannelSink(mpsc::UnboundedSender<Line>);

impl ProgressSink for ChannelSink {
    fn report(&self, step: &str, percent: u8) {
        let _ = self.0.send(Line::Progress {
            step: step.to_string(),
            percent,
        });
    }
}

async fn call(State(state): State<AgentState>, Json(call): Json<EngineCall>) -> Response {
    tracing::debug!(call = call_name(&call), "engine call");
    if !call.reports_progress() {
        let result = run(
            state.engine.as_ref(),
            call,
            &ChannelSink(mpsc::unbounded_channel().0),
        )
        .await;
        return ndjson(vec![Line::Result(result)]);
    }
    let (tx, rx) = mpsc::unbounded_channel::<Line>();
    // The engine call runs in its own task: a controller that goes away
    // mid-copy does not cancel a half-done disk operation.
    let engine = state.engine.clone();
    tokio::spawn(async move {
        let sink = ChannelSink(tx.clone());
        let result = run(engine.as_ref(), call, &sink).await;
        let _ = tx.send(Line::Result(result));
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let line = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(encode(&line)), rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn encode(line: &Line) -> Bytes {
    let mut text = serde_json::to_vec(line).unwrap_or_else(|e| {
        // Our own types always serialize; should one not, the client still
        // gets a typed result line rather than a cut stream.
        let fallback = Line::Result(CallResult::Err(WireError::Unavailable {
            message: format!("agent could not encode its reply: {e}"),
        }));
        serde_json::to_vec(&fallback).unwrap_or_default()
    });
    text.push(b'\n');
    Bytes::from(text)
}

fn ndjson(lines: Vec<Line>) -> Response {
    let body: Vec<u8> = lines.iter().flat_map(|l| encode(l).to_vec()).collect();
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

fn call_name(call: &EngineCall) -> String {
    serde_json::to_value(call)
        .ok()
        .and_then(|v| v.get("call").and_then(|c| c.as_str()).map(str::to_string))
        .unwrap_or_default()
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Run one call on the local engine.
async fn run(engine: &dyn Engine, call: EngineCall, sink: &dyn ProgressSink) -> CallResult {
    let ctx = HostContext::from;
    let result: Result<Reply, ironidc_core::engine::EngineError> = async {
        Ok(match call {
            EngineCall::Info => Reply::Info(engine.info().await.into()),
            EngineCall::CreateVm { host, spec } => {
                engine.create_vm(&ctx(host), &spec.into(), sink).await?;
                Reply::Unit
            }
            EngineCall::DeleteVm { host, uuid } => {
                engine.delete_vm(&ctx(host), &uuid).await?;
                Reply::Unit
            }
            EngineCall::UpdateVm { host, spec } => {
                Reply::Outcome(engine.update_vm(&ctx(host), &spec.into()).await?.into())
            }
            EngineCall::Power {
                host,
                uuid,
                action,
                stop_timeout_ms,
            } => {
                engine
                    .power(&ctx(host), &uuid, action.into(), ms(stop_timeout_ms))
                    .await?;
                Reply::Unit
            }
            EngineCall::State { host, uuid } => {
                Reply::State(engine.state(&ctx(host), &uuid).await?.into())
            }
            EngineCall::Sample { host, uuid } => {
                Reply::Hw(engine.sample(&ctx(host), &uuid).await?.into())
            }
            EngineCall::Scan { host } => Reply::Scan(
                engine
                    .scan(&ctx(host))
                    .await?
                    .into_iter()
                    .map(Into::into)
                    .collect(),
            ),
            EngineCall::HostStatus { host } => {
                Reply::Hw(engine.host_status(&ctx(host)).await?.into())
            }
            EngineCall::HostDetails { host } => {
                Reply::Details(engine.host_details(&ctx(host)).await?.into())
            }
            EngineCall::WriteSeed { host, uuid, seed } => {
                engine.write_seed(&ctx(host), &uuid, &seed.into()).await?;
                Reply::Unit
            }
            EngineCall::Counters { host, uuid } => {
                Reply::Counters(engine.counters(&ctx(host), &uuid).await?.into())
            }
            EngineCall::ConsoleEndpoint { host, uuid } => {
                match engine.console_endpoint(&ctx(host), &uuid).await? {
                    ironidc_core::engine::ConsoleEndpoint::Unix(path) => Reply::Console(path),
                }
            }
            EngineCall::AgentPing {
                host,
                uuid,
                timeout_ms,
            } => {
                engine.agent_ping(&ctx(host), &uuid, ms(timeout_ms)).await?;
                Reply::Unit
            }
            EngineCall::AgentSetPassword {
                host,
                uuid,
                user,
                password,
            } => {
                engine
                    .agent_set_password(&ctx(host), &uuid, &user, &password)
                    .await?;
                Reply::Unit
            }
            EngineCall::AgentExec {
                host,
                uuid,
                program,
                args,
                stdin,
                timeout_ms,
            } => Reply::Exec(
                engine
                    .agent_exec(
                        &ctx(host),
                        &uuid,
                        &program,
                        &args,
                        stdin.as_deref(),
                        ms(timeout_ms),
                    )
                    .await?
                    .into(),
            ),
            EngineCall::AgentWriteFile {
                host,
                uuid,
                path,
                content,
            } => {
                engine
                    .agent_write_file(&ctx(host), &uuid, &path, &content)
                    .await?;
                Reply::Unit
            }
            EngineCall::AgentReadFile {
                host,
                uuid,
                path,
                max_bytes,
            } => Reply::Bytes(
                engine
                    .agent_read_file(
                        &ctx(host),
                        &uuid,
                        &path,
                        usize::try_from(max_bytes).unwrap_or(usize::MAX),
                    )
                    .await?,
            ),
            EngineCall::AgentInterfaces { host, uuid } => Reply::Interfaces(
                engine
                    .agent_interfaces(&ctx(host), &uuid)
                    .await?
                    .into_iter()
                    .map(Into::into)
                    .collect(),
            ),
            EngineCall::SnapshotCreate { host, uuid, name } => Reply::Snapshot(
                engine
                    .snapshot_create(&ctx(host), &uuid, &name)
                    .await?
                    .into(),
            ),
            EngineCall::SnapshotList { host, uuid } => Reply::Snapshots(
                engine
                    .snapshot_list(&ctx(host), &uuid)
                    .await?
                    .into_iter()
                    .map(Into::into)
                    .collect(),
            ),
            EngineCall::SnapshotRevert { host, uuid, name } => {
                engine.snapshot_revert(&ctx(host), &uuid, &name).await?;
                Reply::Unit
            }
            EngineCall::SnapshotDelete { host, uuid, name } => {
                engine.snapshot_delete(&ctx(host), &uuid, &name).await?;
                Reply::Unit
            }
            EngineCall::BackupCreate { host, uuid, name } => Reply::Backup(
                engine
                    .backup_create(&ctx(host), &uuid, &name, sink)
                    .await?
                    .into(),
            ),
            EngineCall::BackupList { host, uuid } => Reply::Backups(
                engine
                    .backup_list(&ctx(host), &uuid)
                    .await?
                    .into_iter()
                    .map(Into::into)
                    .collect(),
            ),
            EngineCall::BackupRestore { host, uuid, name } => {
                engine
                    .backup_restore(&ctx(host), &uuid, &name, sink)
                    .await?;
                Reply::Unit
            }
            EngineCall::BackupDelete { host, uuid, name } => {
                engine.backup_delete(&ctx(host), &uuid, &name).await?;
                Reply::Unit
            }
            EngineCall::Reinstall { host, spec } => {
                engine.reinstall(&ctx(host), &spec.into(), sink).await?;
                Reply::Unit
            }
            EngineCall::IsoList { host } => Reply::Isos(
                engine
                    .iso_list(&ctx(host))
                    .await?
                    .into_iter()
                    .map(Into::into)
                    .collect(),
            ),
            EngineCall::IsoSet { host, uuid, iso } => {
                engine.iso_set(&ctx(host), &uuid, iso.as_deref()).await?;
                Reply::Unit
            }
            EngineCall::NicPlug { host, uuid, nic } => {
                engine.nic_plug(&ctx(host), &uuid, &nic.into()).await?;
                Reply::Unit
            }
            EngineCall::NicUnplug { host, uuid, mac } => {
                engine.nic_unplug(&ctx(host), &uuid, &mac).await?;
                Reply::Unit
            }
        })
    }
    .await;
    match result {
        Ok(reply) => CallResult::Ok(reply),
        Err(e) => {
            tracing::info!(error = %e, "engine call failed");
            CallResult::Err(WireError::from(&e))
        }
    }
}

/// Serve `router` on `listener` over TLS with `identity`'s certificate,
/// HTTP/2 (and HTTP/1.1 for curl-style checks), until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    identity: Arc<Identity>,
    router: Router,
) -> Result<(), ServeError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![identity.cert.clone()], identity.key.clone_key())?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of descriptors and the like: wait, do not spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::info!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let service = router.map_request(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(Peer(peer));
                req
            });
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// Bind `addr` (kept separate so callers learn a bind failure before
/// printing that they listen).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })
}
