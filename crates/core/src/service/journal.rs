//! Tasks and the operation log: every mutating use case runs inside an
//! `Operation`, which is a task row while it runs and a log row when it ends.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::Services;
use crate::engine::ProgressSink;
use crate::error::CoreError;
use crate::model::TaskStatus;
use crate::store::{NewLog, Store};

/// Who asks, from where, through which face, and what they may do.
/// Faces obtain one from `Services::authenticate`; only the service layer
/// builds user actors, so holding an `Actor` is holding its permissions.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    /// The user, when the caller is one (not the root token or the CLI).
    pub user_id: Option<i64>,
    pub source_ip: String,
    pub face: &'static str,
    /// The login session of a JWT caller, for logout.
    pub session_id: Option<String>,
    grants: Grants,
}

#[derive(Debug, Clone)]
enum Grants {
    /// The operator's root token and the CLI: everything.
    Root,
    /// Permission codes.
    Codes(Arc<BTreeSet<String>>),
}

impl Actor {
    /// The operator holding the root token.
    pub fn root(name: impl Into<String>, source_ip: impl Into<String>, face: &'static str) -> Self {
        Self {
            name: name.into(),
            user_id: None,
            source_ip: source_ip.into(),
            face,
            session_id: None,
            grants: Grants::Root,
        }
    }

    /// The operator at the console (`ironidc` CLI and start-up work).
    pub fn system() -> Self {
        Self::root("system", "local", "cli")
    }

    pub(crate) fn user(
        user_id: i64,
        account: &str,
        permissions: BTreeSet<String>,
        source_ip: &str,
        face: &'static str,
        session_id: Option<String>,
    ) -> Self {
        Self {
            name: account.to_string(),
            user_id: Some(user_id),
            source_ip: source_ip.to_string(),
            face,
            session_id,
            grants: Grants::Codes(Arc::new(permissions)),
        }
    }

    /// The same caller (a cached resolution) on another request.
    pub(crate) fn seen_from(mut self, source_ip: &str, face: &'static str) -> Self {
        source_ip.clone_into(&mut self.source_ip);
        self.face = face;
        self
    }

    /// The same caller seen through another face.
    pub fn through(mut self, face: &'static str) -> Self {
        self.face = face;
        self
    }

    pub fn is_root(&self) -> bool {
        matches!(self.grants, Grants::Root)
    }

    /// Whether the caller holds the permission `code`.
    pub fn may(&self, code: &str) -> bool {
        match &self.grants {
            Grants::Root => true,
            Grants::Codes(codes) => codes.contains(code),
        }
    }

    /// `Forbidden` unless the caller holds `code`.
    pub fn require(&self, code: &str) -> Result<(), CoreError> {
        if self.may(code) {
            Ok(())
        } else {
            Err(CoreError::Forbidden(code.to_string()))
        }
    }

    /// The codes held, sorted (all of them for root).
    pub fn permissions(&self) -> Vec<String> {
        match &self.grants {
            Grants::Root => crate::permissions::all_codes(),
            Grants::Codes(codes) => codes.iter().cloned().collect(),
        }
    }

    /// Whether the caller sees every user's VMs, not just their own.
    pub fn sees_all_vms(&self) -> bool {
        self.user_id.is_none() || self.may("vm.all.manage")
    }

    /// Whether the caller may see and act on a VM with this owner.
    pub fn owns(&self, owner_id: Option<i64>) -> bool {
        self.sees_all_vms() || (owner_id.is_some() && owner_id == self.user_id)
    }
}

/// What an operation acts on, as its task and log rows name it: the host
/// and the object (a VM uuid, an account, a token id).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Subject<'a> {
    pub host: Option<&'a str>,
    pub target: Option<&'a str>,
}

impl<'a> Subject<'a> {
    /// An operation on the whole controller (the root token, a config import).
    pub fn none() -> Self {
        Self::default()
    }
    pub fn host(hs_name: &'a str) -> Self {
        Self {
            host: Some(hs_name),
            target: None,
        }
    }
    pub fn vm(hs_name: &'a str, vm_uuid: &'a str) -> Self {
        Self {
            host: Some(hs_name),
            target: Some(vm_uuid),
        }
    }
    /// An object not on a host (a user, a role, a token).
    pub fn target(target: &'a str) -> Self {
        Self {
            host: None,
            target: Some(target),
        }
    }
}

/// One undo step of an operation: run if the operation fails.
type Undo = (
    &'static str,
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), CoreError>> + Send>>,
);

/// A running operation: its task row, and what to undo if it fails.
pub(crate) struct Operation {
    pub task_id: i64,
    action: &'static str,
    hs_name: Option<String>,
    target: Option<String>,
    actor: Actor,
    store: Arc<dyn Store>,
    undo: std::sync::Mutex<Vec<Undo>>,
}

impl Services {
    /// Open the task row of an accepted operation.
    async fn start(
        &self,
        actor: &Actor,
        action: &'static str,
        on: Subject<'_>,
    ) -> Result<Operation, CoreError> {
        let task = self
            .store()
            .create_task(action, on.host, on.target, &actor.name)
            .await?;
        Ok(Operation {
            task_id: task.id,
            action,
            hs_name: on.host.map(str::to_string),
            target: on.target.map(str::to_string),
            actor: actor.clone(),
            store: self.inner.store.clone(),
            undo: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// `Forbidden` unless the actor holds `code`; a refused mutating call
    /// is written to the operation log like any other refusal.
    pub(crate) async fn authorize(
        &self,
        actor: &Actor,
        code: &str,
        action: &'static str,
        hs_name: Option<&str>,
        target: Option<&str>,
    ) -> Result<(), CoreError> {
        if let Err(e) = actor.require(code) {
            self.log_refused(actor, action, hs_name, target, &e).await;
            return Err(e);
        }
        Ok(())
    }

    /// The one way a mutating use case runs. `checked` is the outcome of
    /// its permission and input checks: a refusal is logged and returned
    /// with no task. An accepted input runs `work` as a task (which
    /// reports its steps through the `Operation`); its end closes the
    /// task, runs the undo steps `work` registered if it failed, and
    /// writes the log row with `summary` of the result.
    pub(crate) async fn run_audited<P, T>(
        &self,
        actor: &Actor,
        action: &'static str,
        on: Subject<'_>,
        checked: Result<P, CoreError>,
        work: impl AsyncFnOnce(P, &Operation) -> Result<T, CoreError>,
        summary: impl FnOnce(&T) -> serde_json::Value,
    ) -> Result<T, CoreError> {
        let input = self.accepted(actor, action, on, checked).await?;
        let op = self.start(actor, action, on).await?;
        let result = work(input, &op).await;
        op.finish(result, summary).await
    }

    /// The background variant of `run_audited`, for work that outlives
    /// its request (backups, restores, reinstalls): the task row is made
    /// at once (the caller answers with its id) and `work` runs on,
    /// tracked. Shutdown waits for tracked work (`finish_background`);
    /// what it cuts short is settled by the next start's recovery.
    pub(crate) async fn spawn_audited<P, T, F, Fut>(
        &self,
        actor: &Actor,
        action: &'static str,
        on: Subject<'_>,
        checked: Result<P, CoreError>,
        work: F,
        summary: impl FnOnce(&T) -> serde_json::Value + Send + 'static,
    ) -> Result<i64, CoreError>
    where
        P: Send + 'static,
        T: Send + 'static,
        F: FnOnce(P, Operation) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = (Operation, Result<T, CoreError>)> + Send + 'static,
    {
        let input = self.accepted(actor, action, on, checked).await?;
        let op = self.start(actor, action, on).await?;
        let task_id = op.task_id;
        self.inner.background.spawn(async move {
            let (op, result) = work(input, op).await;
            let _ = op.finish(result, summary).await;
        });
        Ok(task_id)
    }

    /// The checked input, or the refusal, logged.
    async fn accepted<P>(
        &self,
        actor: &Actor,
        action: &'static str,
        on: Subject<'_>,
        checked: Result<P, CoreError>,
    ) -> Result<P, CoreError> {
        if let Err(e) = &checked {
            self.log_refused(actor, action, on.host, on.target, e).await;
        }
        checked
    }

    /// Stop taking background work and wait up to `limit` for what runs;
    /// returns how many were still running (their tasks stay `running`
    /// and the next start settles them).
    pub async fn finish_background(&self, limit: std::time::Duration) -> usize {
        let tracker = &self.inner.background;
        tracker.close();
        if tokio::time::timeout(limit, tracker.wait()).await.is_err() {
            return tracker.len();
        }
        0
    }

    /// Record an operation refused before it started (bad input, not found):
    /// a log row only, no task.
    pub(crate) async fn log_refused(
        &self,
        actor: &Actor,
        action: &str,
        hs_name: Option<&str>,
        target: Option<&str>,
        err: &CoreError,
    ) {
        write_log(
            self.store(),
            actor,
            action,
            hs_name,
            target,
            Err(&err.to_string()),
        )
        .await;
    }
}

/// Write one operation-log row; a failure to log is reported, not raised,
/// so it never turns a done operation into an error.
async fn write_log(
    store: &dyn Store,
    actor: &Actor,
    action: &str,
    hs_name: Option<&str>,
    target: Option<&str>,
    outcome: Result<(), &str>,
) {
    let log = NewLog {
        actor: &actor.name,
        user_id: actor.user_id,
        source_ip: &actor.source_ip,
        face: actor.face,
        action,
        hs_name,
        target,
        ok: outcome.is_ok(),
        message: outcome.err().unwrap_or("ok"),
    };
    if let Err(e) = store.insert_log(log).await {
        tracing::warn!(error = %e, "could not write the operation log");
    }
}

impl Operation {
    pub async fn step(&self, step: &str, progress: u8) {
        if let Err(e) = self.store.update_task(self.task_id, step, progress).await {
            tracing::warn!(task = self.task_id, error = %e, "could not update task");
        }
    }

    /// A progress sink for engine calls; reports are written to the task row
    /// in order by a background writer, so the engine never waits on the store.
    pub fn progress(&self) -> TaskProgress {
        let (tx, mut rx) = mpsc::unbounded_channel::<(String, u8)>();
        let store = self.store.clone();
        let id = self.task_id;
        tokio::spawn(async move {
            while let Some((step, pct)) = rx.recv().await {
                let _ = store.update_task(id, &step, pct).await;
            }
        });
        TaskProgress { tx }
    }

    /// Register a step that undoes what the operation made so far; the
    /// steps run, newest first, if the operation fails, so a failed
    /// create leaves no row, rule or disk behind.
    pub fn undo_on_failure(
        &self,
        what: &'static str,
        undo: impl std::future::Future<Output = Result<(), CoreError>> + Send + 'static,
    ) {
        if let Ok(mut steps) = self.undo.lock() {
            steps.push((what, Box::pin(undo)));
        }
    }

    /// Close the task (undoing a failed operation first) and write the log
    /// row; returns the result unchanged.
    async fn finish<T>(
        self,
        result: Result<T, CoreError>,
        summary: impl FnOnce(&T) -> serde_json::Value,
    ) -> Result<T, CoreError> {
        let undo = self
            .undo
            .lock()
            .map(|mut steps| std::mem::take(&mut *steps))
            .unwrap_or_default();
        if result.is_err() {
            for (what, step) in undo.into_iter().rev() {
                if let Err(e) = step.await {
                    tracing::error!(task = self.task_id, step = what, error = %e, "could not undo a failed operation");
                }
            }
        }
        let (status, value, error) = match &result {
            Ok(v) => (TaskStatus::Succeeded, Some(summary(v)), None),
            Err(e) => (TaskStatus::Failed, None, Some(e.to_string())),
        };
        if let Err(e) = self
            .store
            .finish_task(self.task_id, status, value.as_ref(), error.as_deref())
            .await
        {
            tracing::warn!(task = self.task_id, error = %e, "could not finish task");
        }
        let outcome = match &error {
            None => Ok(()),
            Some(e) => Err(e.as_str()),
        };
        write_log(
            self.store.as_ref(),
            &self.actor,
            self.action,
            self.hs_name.as_deref(),
            self.target.as_deref(),
            outcome,
        )
        .await;
        result
    }
}

pub(crate) struct TaskProgress {
    tx: mpsc::UnboundedSender<(String, u8)>,
}

impl ProgressSink for TaskProgress {
    fn report(&self, step: &str, percent: u8) {
        let _ = self.tx.send((step.to_string(), percent.min(100)));
    }
}
