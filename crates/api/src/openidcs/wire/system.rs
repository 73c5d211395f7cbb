//! The controller itself: tasks, the operation log, counts, the root
//! token, engine types and the configuration export and import.

use std::collections::BTreeMap;

use ironidc_core::engine::EngineInfo;
use ironidc_core::model::{LogEntry, Task};
use ironidc_core::service::{ConfigImportReport, EngineTypeView, ExportedConfig, Stats, TokenInfo};
use serde::Serialize;
use utoipa::ToSchema;

/// A task: every long or changing operation is one.
#[derive(Serialize, ToSchema)]
pub struct TaskReply {
    id: i64,
    /// What it does (`vm.create`, `vm.backup`, …).
    kind: String,
    hs_name: Option<String>,
    vm_uuid: Option<String>,
    /// Who asked.
    actor: String,
    /// What it is doing now.
    step: String,
    /// `running`, `succeeded` or `failed`.
    status: String,
    /// Percent.
    progress: u8,
    result: Option<serde_json::Value>,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl From<Task> for TaskReply {
    fn from(t: Task) -> Self {
        let Task {
            id,
            kind,
            hs_name,
            vm_uuid,
            actor,
            step,
            status,
            progress,
            result,
            error,
            created_at,
            updated_at,
            // Which controller process runs the task is internal (start-up
            // recovery); OpenIDCS's task has no such field.
            controller: _,
        } = t;
        Self {
            id,
            kind,
            hs_name,
            vm_uuid,
            actor,
            step,
            status: status.as_str().to_string(),
            progress,
            result,
            error,
            created_at,
            updated_at,
        }
    }
}

/// One line of the operation log.
#[derive(Serialize, ToSchema)]
pub struct LogReply {
    id: i64,
    /// Unix seconds.
    ts: i64,
    actor: String,
    user_id: Option<i64>,
    source_ip: String,
    /// The API face the call came through.
    face: String,
    action: String,
    hs_name: Option<String>,
    target: Option<String>,
    ok: bool,
    message: String,
}

copy_fields!(LogEntry => LogReply { id, ts, actor, user_id, source_ip, face, action, hs_name, target, ok, message });

/// Counts of hosts and VMs.
#[derive(Serialize, ToSchema)]
pub struct StatsReply {
    host_count: i64,
    vm_count: i64,
    running_vm_count: i64,
    /// The controller process that answered (its name and a per-process
    /// suffix), when several share one database.
    controller: String,
    /// The controller running the background jobs (monitor, reconcile,
    /// renewals, purges); null while none holds them.
    job_owner: Option<String>,
}

copy_fields!(Stats => StatsReply { host_count, vm_count, running_vm_count, controller, job_owner });

/// The connection test of OpenIDCS billing modules.
#[derive(Serialize, ToSchema)]
pub struct ConnectionTestReply {
    /// ironidc's version.
    pub version: String,
    #[serde(flatten)]
    pub stats: StatsReply,
}

/// The root token described without revealing it.
#[derive(Serialize, ToSchema)]
pub struct TokenInfoReply {
    token_set: bool,
    /// The first four characters, to tell tokens apart.
    hint: String,
    /// Unix seconds.
    set_at: i64,
    /// The token itself: only in the reply that set it.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

copy_fields!(TokenInfo => TokenInfoReply { token_set, hint, set_at, token });

/// The engine types, by key.
#[derive(Serialize, ToSchema)]
pub struct EngineTypesReply {
    engine_types: BTreeMap<String, EngineTypeReply>,
}

impl FromIterator<EngineTypeView> for EngineTypesReply {
    fn from_iter<I: IntoIterator<Item = EngineTypeView>>(types: I) -> Self {
        Self {
            engine_types: types
                .into_iter()
                .map(|t| (t.info.key.to_string(), t.into()))
                .collect(),
        }
    }
}

/// An engine type and whether it can be used on this controller.
#[derive(Serialize, ToSchema)]
pub struct EngineTypeReply {
    /// `qemu`, …
    key: String,
    name: String,
    description: String,
    enabled: bool,
    platform: String,
    arch: String,
    /// Its VMs run on a remote agent.
    is_remote: bool,
    /// Why it is not usable, or notes on its use.
    messages: Vec<String>,
    /// Other names accepted for it.
    aliases: Vec<String>,
}

impl From<EngineTypeView> for EngineTypeReply {
    fn from(t: EngineTypeView) -> Self {
        let EngineTypeView { info, aliases } = t;
        let EngineInfo {
            key,
            name,
            description,
            enabled,
            platform,
            arch,
            is_remote,
            messages,
        } = info;
        Self {
            key: key.to_string(),
            name: name.to_string(),
            description: description.to_string(),
            enabled,
            platform: platform.to_string(),
            arch: arch.to_string(),
            is_remote,
            messages,
            aliases: aliases.into_iter().map(str::to_string).collect(),
        }
    }
}

/// Every host and VM definition, as `saving` exports and `loader` reads
/// back. The document is a file format the core owns (read by the core's
/// import), so it is passed on exactly as the core writes it rather than
/// copied into a face type that could drift from the importer.
#[derive(Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct ExportedConfigReply(ExportedConfig);

impl From<ExportedConfig> for ExportedConfigReply {
    fn from(c: ExportedConfig) -> Self {
        Self(c)
    }
}

/// What an import created, updated and skipped.
#[derive(Serialize, ToSchema)]
pub struct ConfigImportReply {
    hosts_created: Vec<String>,
    hosts_updated: Vec<String>,
    /// `hs_name/vm_uuid`.
    vms_imported: Vec<String>,
    vms_updated: Vec<String>,
    /// `hs_name/vm_uuid: reason`.
    vms_skipped: Vec<String>,
}

copy_fields!(ConfigImportReport => ConfigImportReply { hosts_created, hosts_updated, vms_imported, vms_updated, vms_skipped });

/// The controller answers.
#[derive(Serialize, ToSchema)]
pub struct HealthReply {
    /// `ok`.
    pub status: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn the_token_shows_only_when_set() {
        let info = |token: Option<&str>| TokenInfo {
            token_set: true,
            hint: "abcd".into(),
            set_at: 1,
            token: token.map(str::to_string),
        };
        let shown = serde_json::to_value(TokenInfoReply::from(info(Some("secret")))).unwrap();
        assert_eq!(shown["token"], json!("secret"));
        let hidden = serde_json::to_value(TokenInfoReply::from(info(None))).unwrap();
        assert!(hidden.get("token").is_none());
    }

    #[test]
    fn engine_types_are_keyed_with_their_info_flat() {
        let types: EngineTypesReply = [EngineTypeView {
            info: EngineInfo {
                key: "qemu",
                name: "QEMU",
                description: "",
                enabled: true,
                platform: "linux",
                arch: "x86_64",
                is_remote: false,
                messages: vec![],
            },
            aliases: vec!["kvm"],
        }]
        .into_iter()
        .collect();
        let v = serde_json::to_value(types).unwrap();
        assert_eq!(v["engine_types"]["qemu"]["key"], json!("qemu"));
        assert_eq!(v["engine_types"]["qemu"]["aliases"], json!(["kvm"]));
    }
}
