//! Why a console session could not start or ended abnormally.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// QEMU creates the socket when it starts and removes it when it exits,
    /// so a missing socket almost always means the VM is not running.
    #[error("VNC socket {} does not exist: is the VM running?", .0.display())]
    SocketMissing(PathBuf),
    #[error("connecting to VNC socket {}: {source}", .path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("VNC socket: {0}")]
    Vnc(#[source] std::io::Error),
    #[error("WebSocket: {0}")]
    WebSocket(#[source] axum::Error),
}
