//! The VNC console: relay a browser's WebSocket to a VM's VNC unix socket,
//! and serve the noVNC page that speaks to it.

mod assets;
mod error;
mod relay;

pub use assets::{novnc_installed, router, CONTENT_SECURITY_POLICY};
pub use error::ConsoleError;
pub use relay::{relay, ConsoleSession, RelayEnd, RelayOptions, RelayStats, REASON_SESSION_ENDED};
