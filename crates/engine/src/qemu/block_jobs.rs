//! QEMU jobs driven by the engine (snapshot-save/load/delete, blockdev-backup):
//! waiting for them, and undoing what we set up for them on every path.
//!
//! A job lives in QEMU, not in the QMP connection that started it, and the
//! caller's future may be dropped (a cancelled task) while QEMU is still
//! copying. So each job and each block node we add is recorded in a
//! `QmpCleanup`, which ends them in order: explicitly through `finish`, or,
//! when it is dropped first, from a background task that also keeps the VM
//! lock (and whatever else it was given) until QEMU is clean again, so that
//! no other operation on the VM overlaps with the leftovers.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ironidc_core::engine::EngineError;
use serde_json::json;

use super::qmp::{self, JobInfo, QmpClient};

/// Timeout of one QMP exchange.
pub(crate) const QMP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a running job is polled (and progress reported).
pub(crate) const POLL: Duration = Duration::from_millis(200);
/// Polls in a row that may fail (say, another client holds the monitor for a
/// moment) before we stop waiting for a job.
const POLL_FAILURES: u32 = 5;
/// How long cleanup waits for a job to conclude after `job-cancel`. Snapshot
/// jobs cannot be cancelled and run to their end, which for a guest with a
/// lot of memory takes minutes.
const END_WAIT: Duration = Duration::from_secs(600);

/// A job id or node name unique on this host: a leftover of an earlier run
/// (a concluded job never dismissed) must not block a new job. Node names
/// are limited to 31 characters, so this stays short.
pub(crate) fn unique_id(kind: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    format!("ironidc-{kind}-{:x}{n:x}", micros & 0xff_ffff_ffff)
}

/// Poll job `id` until it concludes, calling `on_progress` with every
/// answer. The job's own error (QEMU's message) becomes `EngineError::Qmp`.
/// Each poll uses its own short connection, so the monitor stays available
/// to `state()` and metrics during a long copy.
pub(crate) async fn wait(
    socket: &Path,
    id: &str,
    mut on_progress: impl FnMut(&JobInfo),
) -> Result<(), EngineError> {
    let mut failures = 0;
    loop {
        match poll(socket, id).await {
            Ok(Some(job)) => {
                failures = 0;
                on_progress(&job);
                if job.is_concluded() {
                    return match job.error {
                        Some(e) => Err(EngineError::Qmp(format!("{} job failed: {e}", job.kind))),
                        None => Ok(()),
                    };
                }
            }
            Ok(None) => {
                return Err(EngineError::Qmp(format!(
                    "job {id} disappeared before it concluded"
                )))
            }
            Err(e) => {
                failures += 1;
                if failures >= POLL_FAILURES {
                    return Err(e);
                }
                tracing::debug!(job = id, error = %e, "polling a job failed; retrying");
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn poll(socket: &Path, id: &str) -> Result<Option<JobInfo>, EngineError> {
    QmpClient::connect(socket, QMP_TIMEOUT)
        .await?
        .query_job(id)
        .await
}

enum Undo {
    /// Cancel unless concluded, wait for the end, dismiss.
    Job(String),
    /// `blockdev-del` (flushes and closes the image).
    Node(String),
}

/// What to undo in QEMU after an operation, last recorded first.
pub(crate) struct QmpCleanup {
    socket: PathBuf,
    undo: Vec<Undo>,
    /// Dropped only once the undo steps are done (the VM lock).
    held: Vec<Box<dyn Any + Send>>,
}

impl QmpCleanup {
    pub fn new(socket: PathBuf) -> Self {
        Self {
            socket,
            undo: Vec::new(),
            held: Vec::new(),
        }
    }

    /// Record a started job.
    pub fn job(&mut self, id: &str) {
        self.undo.push(Undo::Job(id.to_string()));
    }

    /// Record a node added with `blockdev-add`.
    pub fn node(&mut self, name: &str) {
        self.undo.push(Undo::Node(name.to_string()));
    }

    /// Keep `value` alive until the cleanup is done, even when that happens
    /// in the background after the caller's future was dropped.
    pub fn hold(&mut self, value: impl Any + Send) {
        self.held.push(Box::new(value));
    }

    /// Undo everything now. Every step is tried; the first error is returned.
    pub async fn finish(mut self) -> Result<(), EngineError> {
        let undo = std::mem::take(&mut self.undo);
        run_undo(&self.socket, undo).await
    }
}

impl Drop for QmpCleanup {
    fn drop(&mut self) {
        if self.undo.is_empty() {
            return;
        }
        let undo = std::mem::take(&mut self.undo);
        let held = std::mem::take(&mut self.held);
        let socket = self.socket.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                tracing::info!(socket = %socket.display(), "operation dropped; ending its QEMU jobs in the background");
                rt.spawn(async move {
                    if let Err(e) = run_undo(&socket, undo).await {
                        tracing::warn!(socket = %socket.display(), error = %e, "cleanup of QEMU jobs failed");
                    }
                    drop(held);
                });
            }
            Err(_) => {
                tracing::warn!(socket = %socket.display(), "no runtime left to end QEMU jobs; they stay in QEMU until it exits")
            }
        }
    }
}

async fn run_undo(socket: &Path, undo: Vec<Undo>) -> Result<(), EngineError> {
    let mut first_error = None;
    for step in undo.into_iter().rev() {
        let res = match &step {
            Undo::Job(id) => end_job(socket, id).await,
            Undo::Node(name) => qmp::command(
                socket,
                "blockdev-del",
                Some(json!({ "node-name": name })),
                QMP_TIMEOUT,
            )
            .await
            .map(drop),
        };
        if let Err(e) = res {
            tracing::warn!(socket = %socket.display(), error = %e, "QEMU cleanup step failed");
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Cancel job `id` if it still runs, wait until it concludes, dismiss it.
async fn end_job(socket: &Path, id: &str) -> Result<(), EngineError> {
    let started = Instant::now();
    let mut cancel_sent = false;
    loop {
        let mut client = QmpClient::connect(socket, QMP_TIMEOUT).await?;
        match client.query_job(id).await? {
            None => return Ok(()),
            Some(job) if job.is_concluded() => return client.job_dismiss(id).await,
            Some(_) if !cancel_sent => {
                cancel_sent = true;
                // Snapshot jobs refuse: they then run to their end.
                if let Err(e) = client.job_cancel(id).await {
                    tracing::debug!(job = id, error = %e, "job-cancel refused");
                }
            }
            Some(_) => {}
        }
        drop(client);
        if started.elapsed() > END_WAIT {
            return Err(EngineError::Qmp(format!(
                "job {id} did not end within {} s",
                END_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_fit_a_node_name() {
        let a = unique_id("bk");
        let b = unique_id("bk");
        assert_ne!(a, b);
        // QEMU node names: at most 31 characters, a letter first.
        assert!(a.len() <= 31, "{a}");
        assert!(a.starts_with(|c: char| c.is_ascii_alphabetic()));
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
