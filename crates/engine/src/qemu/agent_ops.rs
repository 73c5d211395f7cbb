//! Guest agent operations of the engine (qemu-ga over the virtio-serial
//! channel; the protocol client is `qga.rs`).
//!
//! QEMU serves the agent socket to one client at a time: a second client's
//! connect succeeds but it is not read until the first one leaves, so two
//! concurrent calls would see each other as "no reply". Calls on one VM are
//! therefore serialized by an agent lock of their own — not the VM lock, so
//! a long `exec` never holds up power actions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use ironidc_core::engine::{EngineError, ExecOutput, GuestInterface, HostContext, PowerState};

use super::qga::{QgaClient, REPLY_TIMEOUT};
use super::vm_dir::VmDir;
use super::QemuEngine;

/// How long a call waits for another agent call on the same VM to finish.
const BUSY_WAIT: Duration = Duration::from_secs(60);

type AgentLock = Arc<tokio::sync::Mutex<()>>;

/// Agent locks by socket path. A process-wide table rather than a field of
/// the engine: the socket is what is exclusive, whichever engine talks to
/// it. Entries are weak, so a VM's lock goes away with its last user.
static AGENT_LOCKS: Mutex<BTreeMap<PathBuf, Weak<tokio::sync::Mutex<()>>>> =
    Mutex::new(BTreeMap::new());

fn agent_lock(socket: &Path) -> AgentLock {
    let mut locks = AGENT_LOCKS.lock().unwrap_or_else(|p| p.into_inner());
    locks.retain(|_, weak| weak.strong_count() > 0);
    if let Some(lock) = locks.get(socket).and_then(Weak::upgrade) {
        return lock;
    }
    let lock = AgentLock::default();
    locks.insert(socket.to_path_buf(), Arc::downgrade(&lock));
    lock
}

/// A connected agent client that holds the VM's agent lock while it lives.
struct Session {
    client: QgaClient,
    _busy: tokio::sync::OwnedMutexGuard<()>,
}

impl QemuEngine {
    /// Check that the VM runs, take its agent lock (waiting up to
    /// `busy_wait` for another call to finish) and connect; `timeout` bounds
    /// the connect and the resync.
    async fn agent_session(
        &self,
        host: &HostContext,
        uuid: &str,
        timeout: Duration,
        busy_wait: Duration,
    ) -> Result<Session, EngineError> {
        let dir = VmDir::new(host, uuid)?;
        dir.require().await?;
        let (pid, state) = self.observe(&dir).await;
        // A paused guest cannot answer; `Unknown` (the monitor is busy with
        // another client) is given the benefit of the doubt.
        let refused = match (pid, state) {
            (None, _) => Some(PowerState::Stopped),
            (Some(_), PowerState::Paused | PowerState::Crashed) => Some(state),
            _ => None,
        };
        if let Some(state) = refused {
            return Err(EngineError::InvalidState {
                state: state.as_str(),
                action: "using the guest agent",
            });
        }
        let socket = dir.qga_socket();
        let busy = tokio::time::timeout(busy_wait, agent_lock(&socket).lock_owned())
            .await
            .map_err(|_| {
                EngineError::AgentUnavailable(
                    "another guest agent call on this VM is still running".into(),
                )
            })?;
        let client = QgaClient::connect(&socket, timeout).await?;
        Ok(Session {
            client,
            _busy: busy,
        })
    }

    pub(super) async fn agent_ping(
        &self,
        host: &HostContext,
        uuid: &str,
        timeout: Duration,
    ) -> Result<(), EngineError> {
        let mut s = self.agent_session(host, uuid, timeout, timeout).await?;
        s.client.ping().await
    }

    pub(super) async fn agent_set_password(
        &self,
        host: &HostContext,
        uuid: &str,
        user: &str,
        password: &str,
    ) -> Result<(), EngineError> {
        check_user_name(user)?;
        check_password(password)?;
        let mut s = self
            .agent_session(host, uuid, REPLY_TIMEOUT, BUSY_WAIT)
            .await?;
        s.client.set_user_password(user, password).await?;
        tracing::info!(uuid, user, "guest password set through the agent");
        Ok(())
    }

    pub(super) async fn agent_exec(
        &self,
        host: &HostContext,
        uuid: &str,
        program: &str,
        args: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput, EngineError> {
        let mut s = self
            .agent_session(host, uuid, REPLY_TIMEOUT, BUSY_WAIT)
            .await?;
        let out = s.client.exec(program, args, stdin, timeout).await?;
        tracing::info!(uuid, program, exit = ?out.exit_code, timed_out = out.timed_out, "guest command ran");
        Ok(out)
    }

    pub(super) async fn agent_write_file(
        &self,
        host: &HostContext,
        uuid: &str,
        path: &str,
        content: &[u8],
    ) -> Result<(), EngineError> {
        let mut s = self
            .agent_session(host, uuid, REPLY_TIMEOUT, BUSY_WAIT)
            .await?;
        s.client.write_file(path, content).await
    }

    pub(super) async fn agent_read_file(
        &self,
        host: &HostContext,
        uuid: &str,
        path: &str,
        max_bytes: usize,
    ) -> Result<Vec<u8>, EngineError> {
        let mut s = self
            .agent_session(host, uuid, REPLY_TIMEOUT, BUSY_WAIT)
            .await?;
        s.client.read_file(path, max_bytes).await
    }

    pub(super) async fn agent_interfaces(
        &self,
        host: &HostContext,
        uuid: &str,
    ) -> Result<Vec<GuestInterface>, EngineError> {
        let mut s = self
            .agent_session(host, uuid, REPLY_TIMEOUT, BUSY_WAIT)
            .await?;
        s.client.interfaces().await
    }
}

/// `[a-z_][a-z0-9_-]{0,31}`: a portable Unix user name. The guest passes it
/// to `chpasswd`, so nothing else (no `:`, no newline) may get through.
fn check_user_name(user: &str) -> Result<(), EngineError> {
    let mut chars = user.chars();
    let valid = user.len() <= 32
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(invalid_input(user, "not a valid user name"))
    }
}

/// The guest feeds `user:password` lines to `chpasswd`: a line break would
/// start another line (another user's password).
fn check_password(password: &str) -> Result<(), EngineError> {
    if password.is_empty() || password.contains(['\n', '\r', '\0']) {
        return Err(invalid_input(
            "password",
            "empty or containing a line break or NUL",
        ));
    }
    Ok(())
}

fn invalid_input(what: &str, why: &str) -> EngineError {
    EngineError::io(
        what.to_string(),
        std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_string()),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        for good in ["root", "_apt", "a", "web-admin_2", &"a".repeat(32)] {
            assert!(check_user_name(good).is_ok(), "{good:?} refused");
        }
        for bad in [
            "",
            "Root",
            "1abc",
            "-x",
            "a:b",
            "a\nroot",
            "ü",
            &"a".repeat(33),
        ] {
            assert!(check_user_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn passwords() {
        assert!(check_password("s3cret: with spaces").is_ok());
        for bad in ["", "a\nroot:x", "a\rb", "a\0b"] {
            assert!(check_password(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn one_lock_per_socket_while_in_use() {
        let a = agent_lock(Path::new("/x/a.sock"));
        let a2 = agent_lock(Path::new("/x/a.sock"));
        let b = agent_lock(Path::new("/x/b.sock"));
        assert!(Arc::ptr_eq(&a, &a2));
        assert!(!Arc::ptr_eq(&a, &b));
        drop((a, a2, b));
        let locks = AGENT_LOCKS.lock().unwrap();
        assert!(locks
            .get(Path::new("/x/a.sock"))
            .is_none_or(|w| w.strong_count() == 0));
    }
}
