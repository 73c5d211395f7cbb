//! HTTP/1 connections under limits, for the API and the reverse proxy
//! alike: a cap on open connections per client address and in total, a
//! header-read timeout, and an idle keep-alive timeout. Without them a
//! client that opens sockets and sends half a request line can hold every
//! file descriptor of the process.
//!
//! The timeouts follow the phase of the connection:
//! - waiting for a request head (from accept, or from the first byte after
//!   an idle pause) ends after `header_timeout`;
//! - serving a request has no deadline here (a VM stop may take a minute);
//! - idle between keep-alive requests ends after `idle_timeout`.
//!
//! hyper's own header timer would start on every wait for a head, idle
//! pauses included, so it cannot tell the two apart; it is kept as a
//! backstop at the longer of the two.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

/// Limits of one listener's connections (settings of `serve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections one client address may hold (0: no cap).
    pub per_address: usize,
    /// Open connections of the listener (0: no cap).
    pub total: usize,
    /// Time to send a complete request head.
    pub header_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            per_address: 256,
            total: 8192,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Counts open connections and admits new ones within the caps.
#[derive(Debug)]
pub struct ConnectionGate {
    limits: ConnectionLimits,
    open: Mutex<HashMap<IpAddr, usize>>,
    total: AtomicUsize,
}

/// An admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnectionPermit {
    gate: Arc<ConnectionGate>,
    peer: IpAddr,
}

impl ConnectionGate {
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: Mutex::new(HashMap::new()),
            total: AtomicUsize::new(0),
        })
    }

    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// A permit for a connection from `peer`, or `None` over a cap.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<ConnectionPermit> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let total = self.total.load(Ordering::Relaxed);
        if self.limits.total > 0 && total >= self.limits.total {
            return None;
        }
        let mine = open.entry(peer).or_insert(0);
        if self.limits.per_address > 0 && *mine >= self.limits.per_address {
            return None;
        }
        *mine += 1;
        self.total.store(total + 1, Ordering::Relaxed);
        Some(ConnectionPermit {
            gate: self.clone(),
            peer,
        })
    }

    /// Open connections now (all addresses).
    pub fn open_connections(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

impl ConnectionPermit {
    /// The limits of the listener that admitted this connection.
    pub fn limits(&self) -> &ConnectionLimits {
        &self.gate.limits
    }
}

/// Pause after a failed accept: the usual cause is running out of file
/// descriptors, and retrying at once would spin a core.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Accept on `listener` until `until` completes, handing each connection
/// `gate` admits to `serve` (which spawns its task); one over a cap is
/// closed at once.
pub async fn accept_until(
    listener: &TcpListener,
    gate: &Arc<ConnectionGate>,
    until: impl Future<Output = ()>,
    mut serve: impl FnMut(TcpStream, SocketAddr, ConnectionPermit),
) {
    let mut until = std::pin::pin!(until);
    loop {
        tokio::select! {
            () = &mut until => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match gate.admit(peer.ip()) {
                    Some(permit) => serve(stream, peer, permit),
                    None => tracing::debug!(%peer, "connection refused: too many open"),
                },
                Err(e) => {
                    tracing::warn!("accept failed on {:?}: {e}", listener.local_addr().ok());
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.peer);
            }
        }
        self.gate.total.fetch_sub(1, Ordering::Relaxed);
    }
}

const WAITING_FOR_HEAD: u8 = 0;
const SERVING: u8 = 1;
const IDLE: u8 = 2;

/// The phase of one connection, shared by its IO, its service and its
/// watchdog.
struct Activity {
    started: Instant,
    phase: AtomicU8,
    /// Milliseconds since `started` when the phase began.
    since_ms: AtomicU64,
    in_flight: AtomicUsize,
    changed: Notify,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            phase: AtomicU8::new(WAITING_FOR_HEAD),
            since_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            changed: Notify::new(),
        })
    }

    fn enter(&self, phase: u8) {
        let now = self.started.elapsed().as_millis() as u64;
        self.since_ms.store(now, Ordering::SeqCst);
        self.phase.store(phase, Ordering::SeqCst);
        // notify_one keeps a permit when the watchdog is not waiting yet.
        self.changed.notify_one();
    }

    fn bytes_read(&self) {
        if self.phase.load(Ordering::SeqCst) == IDLE {
            self.enter(WAITING_FOR_HEAD);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.enter(SERVING);
    }

    fn request_ended(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.enter(IDLE);
        }
    }

    /// Resolves with the phase that overstayed its timeout.
    async fn expired(&self, limits: &ConnectionLimits) -> u8 {
        loop {
            let notified = self.changed.notified();
            let phase = self.phase.load(Ordering::SeqCst);
            let since = Duration::from_millis(self.since_ms.load(Ordering::SeqCst));
            let limit = match phase {
                WAITING_FOR_HEAD => Some(limits.header_timeout),
                IDLE => Some(limits.idle_timeout),
                _ => None,
            };
            match limit {
                Some(limit) => {
                    let deadline = tokio::time::Instant::from_std(self.started + since + limit);
                    tokio::select! {
                        _ = notified => continue,
                        _ = tokio::time::sleep_until(deadline) => {
                            if self.phase.load(Ordering::SeqCst) == phase
                                && Duration::from_millis(self.since_ms.load(Ordering::SeqCst)) == since
                            {
                                return phase;
                            }
                        }
                    }
                }
                None => notified.await,
            }
        }
    }
}

/// The connection's IO: reports reads, so an idle connection that starts
/// a new request is timed as waiting for a head.
struct TrackedIo<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for TrackedIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for TrackedIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The service, marking each request's start and end.
struct TrackedService<S> {
    inner: S,
    activity: Arc<Activity>,
}

/// Ends a request when its response future completes or is dropped.
struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

impl<S, B> Service<Request<Incoming>> for TrackedService<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, S::Error>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.activity.request_started();
        let guard = RequestGuard(self.activity.clone());
        let response = self.inner.call(req);
        Box::pin(async move {
            let result = response.await;
            drop(guard);
            result
        })
    }
}

/// Serve one HTTP/1 connection (upgrades included) until it ends, a
/// timeout of `limits` strikes, or `stop` turns true (then the request in
/// flight finishes first).
pub async fn serve_http1<I, S, B>(
    io: I,
    service: S,
    limits: &ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) -> Result<(), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = Activity::new();
    let io = TrackedIo {
        inner: io,
        activity: activity.clone(),
    };
    let service = TrackedService {
        inner: service,
        activity: activity.clone(),
    };
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout.max(limits.idle_timeout))
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => result,
        phase = activity.expired(limits) => {
            if phase == IDLE {
                // Nothing in flight: close cleanly.
                conn.as_mut().graceful_shutdown();
                conn.await
            } else {
                tracing::debug!("connection dropped: no complete request head in time");
                Ok(())
            }
        }
        () = async {
            // The guard `wait_for` returns is not Send: drop it here.
            let _ = stop.wait_for(|stopped| *stopped).await;
        } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

/// Raise the soft limit on open files to the hard limit, so the caps above
/// bind before the process runs out of descriptors; returns the new limit.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn gate_caps_per_address_and_in_total() {
        let gate = ConnectionGate::new(ConnectionLimits {
            per_address: 2,
            total: 3,
            ..ConnectionLimits::default()
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert!(gate.admit(a).is_none(), "third from one address");
        let _b1 = gate.admit(b).unwrap();
        assert!(gate.admit(b).is_none(), "fourth in total");
        drop(a1);
        assert_eq!(gate.open_connections(), 2);
        assert!(gate.admit(a).is_some(), "a freed place is reusable");
    }
}
