//! System-wide queries: statistics, engines, logs and tasks.

use super::{Actor, Services};
use crate::accounts::{LogFilter, Page};
use crate::engine::EngineInfo;
use crate::error::CoreError;
use crate::model::{LogEntry, Task};

#[derive(Debug, Clone)]
pub struct Stats {
    pub host_count: i64,
    pub vm_count: i64,
    pub running_vm_count: i64,
    /// The controller process that answered (see `ClusterStatus`).
    pub controller: String,
    /// The controller running the background jobs, if any holds them.
    pub job_owner: Option<String>,
}

/// One engine type as `GET /api/system/engine` lists it.
#[derive(Debug, Clone)]
pub struct EngineTypeView {
    pub info: EngineInfo,
    /// Other names accepted for this engine.
    pub aliases: Vec<&'static str>,
}

/// The controller's figures for monitoring (`/metrics`), read fresh.
#[derive(Debug, Clone)]
pub struct Figures {
    pub vms_by_state: Vec<(String, i64)>,
    pub tasks_by_status: Vec<(String, i64)>,
    /// Each host, and whether its engine answered just now.
    pub hosts_up: Vec<(String, bool)>,
}

/// How long a host's engine may take to answer the reachability probe.
const HOST_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Default and ceiling of `limit` on log and task queries.
pub const DEFAULT_LIST_LIMIT: u32 = 100;
pub const MAX_LIST_LIMIT: u32 = 1000;

impl Services {
    pub async fn stats(&self, actor: &Actor) -> Result<Stats, CoreError> {
        actor.require("system.stats.read")?;
        let host_count = self.store().list_hosts().await?.len() as i64;
        let (vm_count, running_vm_count) = self.store().vm_counts().await?;
        let cluster = self.cluster_status().await?;
        Ok(Stats {
            host_count,
            vm_count,
            running_vm_count,
            controller: cluster.controller,
            job_owner: cluster.job_owner,
        })
    }

    /// Figures for monitoring. The face serving them decides who may
    /// read them (the root token, or listed addresses).
    pub async fn figures(&self) -> Result<Figures, CoreError> {
        // Probed side by side: a scrape waits for the slowest host once,
        // not for every host that does not answer in turn.
        let mut probes = tokio::task::JoinSet::new();
        for summary in self.store().list_hosts().await? {
            let host = summary.host;
            let services = self.clone();
            probes.spawn(async move {
                let up = match services.engine_of(&host) {
                    Ok(engine) => {
                        let ctx = services.host_context(&host);
                        let probe = engine.host_details(&ctx);
                        matches!(
                            tokio::time::timeout(HOST_PROBE_TIMEOUT, probe).await,
                            Ok(Ok(_))
                        )
                    }
                    Err(_) => false,
                };
                (host.name, up)
            });
        }
        let mut hosts_up = probes.join_all().await;
        hosts_up.sort();
        Ok(Figures {
            vms_by_state: self.store().vm_state_counts().await?,
            tasks_by_status: self.store().task_status_counts().await?,
            hosts_up,
        })
    }

    pub async fn engine_types(&self, actor: &Actor) -> Result<Vec<EngineTypeView>, CoreError> {
        actor.require("system.stats.read")?;
        let mut out = Vec::new();
        let mut keys: Vec<&&'static str> = self.inner.engines.keys().collect();
        keys.sort();
        for key in keys {
            if let Some(engine) = self.inner.engines.get(key) {
                let aliases = if **key == *"qemu" {
                    vec!["QEMUServer", "kvm"]
                } else {
                    Vec::new()
                };
                out.push(EngineTypeView {
                    info: engine.info().await,
                    aliases,
                });
            }
        }
        Ok(out)
    }

    /// The newest operation-log rows: everyone's with `audit.opera.read`,
    /// otherwise the caller's own.
    pub async fn logs(
        &self,
        actor: &Actor,
        hs_name: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<LogEntry>, CoreError> {
        let filter = LogFilter {
            hs_name: hs_name.filter(|h| !h.is_empty()).map(str::to_string),
            desc: true,
            page: Page {
                offset: 0,
                limit: clamp_limit(limit)?,
            },
            ..LogFilter::default()
        };
        let all = actor.may("audit.opera.read");
        Ok(self.operation_log(actor, !all, filter).await?.entries)
    }

    /// The newest tasks: everyone's with `system.task.read`, otherwise
    /// those the caller started.
    pub async fn tasks(
        &self,
        actor: &Actor,
        hs_name: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<Task>, CoreError> {
        let limit = clamp_limit(limit)?;
        let own = (!actor.may("system.task.read")).then_some(actor.name.as_str());
        Ok(self
            .store()
            .list_tasks(hs_name.filter(|h| !h.is_empty()), own, limit)
            .await?)
    }

    /// One task by id, under the same visibility as `tasks` (a task the
    /// caller may not see is not found).
    pub async fn task(&self, actor: &Actor, id: i64) -> Result<Task, CoreError> {
        let task = self.store().task_by_id(id).await?;
        match task {
            Some(t) if actor.may("system.task.read") || t.actor == actor.name => Ok(t),
            _ => Err(CoreError::not_found("task", id.to_string())),
        }
    }
}

fn clamp_limit(limit: Option<u32>) -> Result<u32, CoreError> {
    match limit {
        None => Ok(DEFAULT_LIST_LIMIT),
        Some(0) => Err(CoreError::invalid("limit", "must be at least 1")),
        Some(n) => Ok(n.min(MAX_LIST_LIMIT)),
    }
}
