//! Relay one browser WebSocket to a VM's VNC server on a unix socket.
//!
//! The relay does not speak RFB: it copies bytes, so any VNC client that
//! tunnels RFB over WebSocket binary frames (noVNC) works. The session is
//! re-checked periodically so that revoking a console token or letting it
//! expire cuts a console that is already open.

use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::time::{interval_at, timeout, MissedTickBehavior};

use crate::error::ConsoleError;

/// RFC 6455 close codes the relay sends.
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_INTERNAL: u16 = 1011;

pub const REASON_SESSION_ENDED: &str = "console session expired or revoked";
const REASON_VM_CLOSED: &str = "the VM's console closed";
const REASON_UNAVAILABLE: &str = "the VM's console is not available (is the VM running?)";
const REASON_VNC_FAILED: &str = "the VM's console failed";

/// RFB framebuffer updates are large; 64 KiB keeps the frame count (and the
/// per-frame overhead) low without holding much memory per session.
const READ_BUFFER: usize = 64 * 1024;

/// How long to wait for the peer's half of the closing handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Whether a console session may go on. The relay asks periodically.
#[async_trait]
pub trait ConsoleSession: Send + Sync {
    /// `active`: whether any bytes flowed (either way) since the last call,
    /// so an implementation can end idle sessions.
    async fn still_valid(&self, active: bool) -> bool;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayOptions {
    /// How often `ConsoleSession::still_valid` is asked.
    pub check_every: Duration,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            check_every: Duration::from_secs(10),
        }
    }
}

/// Which side ended a relay that ended normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// The browser closed the WebSocket.
    ClientClosed,
    /// QEMU closed the VNC connection (VM stopped, or it dropped the client).
    VmClosed,
    /// `ConsoleSession::still_valid` said no.
    SessionEnded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayStats {
    pub bytes_to_vm: u64,
    pub bytes_from_vm: u64,
    pub duration: Duration,
    pub end: RelayEnd,
}

/// Copy RFB bytes between `ws` and the VNC server at `vnc_socket` until one
/// side closes or `session` stops being valid. The browser always gets a
/// Close frame saying why, including when the socket cannot be reached.
pub async fn relay(
    mut ws: WebSocket,
    vnc_socket: &Path,
    session: &dyn ConsoleSession,
    options: RelayOptions,
) -> Result<RelayStats, ConsoleError> {
    let started = Instant::now();
    let vnc = match UnixStream::connect(vnc_socket).await {
        Ok(s) => s,
        Err(e) => {
            close(&mut ws, CLOSE_INTERNAL, REASON_UNAVAILABLE).await;
            return Err(if e.kind() == std::io::ErrorKind::NotFound {
                ConsoleError::SocketMissing(vnc_socket.to_path_buf())
            } else {
                ConsoleError::Connect {
                    path: vnc_socket.to_path_buf(),
                    source: e,
                }
            });
        }
    };
    let (mut vm_read, mut vm_write) = vnc.into_split();
    let mut buf = vec![0u8; READ_BUFFER];
    let mut bytes_to_vm = 0u64;
    let mut bytes_from_vm = 0u64;
    let mut flowed = false;
    // The first check comes one period after the start: the token was just
    // validated when the WebSocket was accepted.
    let check_every = options.check_every.max(Duration::from_millis(10));
    let mut checks = interval_at(tokio::time::Instant::now() + check_every, check_every);
    checks.set_missed_tick_behavior(MissedTickBehavior::Delay);

    // Every branch's future is cancel-safe (`recv` is `StreamExt::next`,
    // `read` and `tick` are documented so), so no data is lost when another
    // branch wins. Writes happen in the branch bodies, outside the select.
    let end = loop {
        tokio::select! {
            msg = ws.recv() => match msg {
                None => break RelayEnd::ClientClosed,
                Some(Err(e)) => return Err(ConsoleError::WebSocket(e)),
                Some(Ok(Message::Binary(data))) => {
                    if let Err(e) = vm_write.write_all(&data).await {
                        close(&mut ws, CLOSE_INTERNAL, REASON_VNC_FAILED).await;
                        return Err(ConsoleError::Vnc(e));
                    }
                    bytes_to_vm += data.len() as u64;
                    flowed |= !data.is_empty();
                }
                // RFB is binary; noVNC never sends text.
                Some(Ok(Message::Text(_))) => tracing::debug!("console: ignoring a text frame"),
                Some(Ok(Message::Ping(payload))) => {
                    ws.send(Message::Pong(payload)).await.map_err(ConsoleError::WebSocket)?;
                }
                Some(Ok(Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) => {
                    // One more read flushes the Close reply tungstenite queued.
                    let _ = timeout(CLOSE_GRACE, ws.recv()).await;
                    break RelayEnd::ClientClosed;
                }
            },
            read = vm_read.read(&mut buf) => match read {
                Ok(0) => {
                    close(&mut ws, CLOSE_NORMAL, REASON_VM_CLOSED).await;
                    break RelayEnd::VmClosed;
                }
                Ok(n) => {
                    let frame = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                    ws.send(frame).await.map_err(ConsoleError::WebSocket)?;
                    bytes_from_vm += n as u64;
                    flowed = true;
                }
                Err(e) => {
                    close(&mut ws, CLOSE_INTERNAL, REASON_VNC_FAILED).await;
                    return Err(ConsoleError::Vnc(e));
                }
            },
            _ = checks.tick() => {
                if !session.still_valid(std::mem::take(&mut flowed)).await {
                    close(&mut ws, CLOSE_POLICY, REASON_SESSION_ENDED).await;
                    break RelayEnd::SessionEnded;
                }
            }
        }
    };
    // Tell QEMU we are gone now rather than when the stream drops.
    let _ = vm_write.shutdown().await;
    Ok(RelayStats {
        bytes_to_vm,
        bytes_from_vm,
        duration: started.elapsed(),
        end,
    })
}

/// Send a Close frame and wait briefly for the peer's answer, so the
/// browser sees a clean close with our code and reason. Failures are
/// ignored: the connection is being abandoned either way.
async fn close(ws: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if ws.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = timeout(CLOSE_GRACE, async {
        while let Some(Ok(msg)) = ws.recv().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}
