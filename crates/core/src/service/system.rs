//! System-wide queries: statistics, engines, logs and tasks.

use serde::Serialize;

use super::Services;
use crate::engine::EngineInfo;
use crate::error::CoreError;
use crate::model::{LogEntry, Task};

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub host_count: i64,
    pub vm_count: i64,
    pub running_vm_count: i64,
}

/// One engine type as `GET /api/system/engine` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct EngineTypeView {
    #[serde(flatten)]
    pub info: EngineInfo,
    /// Other names accepted for this engine.
    pub aliases: Vec<&'static str>,
}

/// Default and ceiling of `limit` on log and task queries.
pub const DEFAULT_LIST_LIMIT: u32 = 100;
pub const MAX_LIST_LIMIT: u32 = 1000;

impl Services {
    pub async fn stats(&self) -> Result<Stats, CoreError> {
        let host_count = self.store().list_hosts().await?.len() as i64;
        let (vm_count, running_vm_count) = self.store().vm_counts().await?;
        Ok(Stats {
            host_count,
            vm_count,
            running_vm_count,
        })
    }

    pub async fn engine_types(&self) -> Vec<EngineTypeView> {
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
        out
    }

    pub async fn logs(
        &self,
        hs_name: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<LogEntry>, CoreError> {
        let limit = clamp_limit(limit)?;
        Ok(self
            .store()
            .list_logs(hs_name.filter(|h| !h.is_empty()), limit)
            .await?)
    }

    pub async fn tasks(
        &self,
        hs_name: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<Task>, CoreError> {
        let limit = clamp_limit(limit)?;
        Ok(self
            .store()
            .list_tasks(hs_name.filter(|h| !h.is_empty()), limit)
            .await?)
    }
}

fn clamp_limit(limit: Option<u32>) -> Result<u32, CoreError> {
    match limit {
        None => Ok(DEFAULT_LIST_LIMIT),
        Some(0) => Err(CoreError::invalid("limit", "must be at least 1")),
        Some(n) => Ok(n.min(MAX_LIST_LIMIT)),
    }
}
