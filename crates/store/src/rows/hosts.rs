//! Rows of hosts, VMs and the VM status series.

use ironidc_core::engine::PowerState;
use ironidc_core::model::{Host, Vm, VmStatusSample};
use ironidc_core::store::{HostSummary, StoreError};

use super::{flag, json};

/// A `hosts` row.
#[derive(sqlx::FromRow)]
pub(crate) struct HostRow {
    id: i64,
    name: String,
    engine: String,
    enabled: i64,
    config: String,
    created_at: i64,
}

impl HostRow {
    pub(crate) const COLUMNS: &'static str = "id, name, engine, enabled, config, created_at";
}

impl TryFrom<HostRow> for Host {
    type Error = StoreError;

    fn try_from(row: HostRow) -> Result<Self, StoreError> {
        Ok(Host {
            id: row.id,
            name: row.name,
            engine: row.engine,
            enabled: flag(row.enabled),
            config: json("host config", &row.config)?,
            created_at: row.created_at,
        })
    }
}

/// A `hosts` row with the number of its VMs (`vm_count`).
#[derive(sqlx::FromRow)]
pub(crate) struct HostSummaryRow {
    #[sqlx(flatten)]
    host: HostRow,
    vm_count: i64,
}

impl TryFrom<HostSummaryRow> for HostSummary {
    type Error = StoreError;

    fn try_from(row: HostSummaryRow) -> Result<Self, StoreError> {
        Ok(HostSummary {
            host: row.host.try_into()?,
            vm_count: row.vm_count,
        })
    }
}

/// A `vms` row (`v`) joined with its host (`h`) for the host's name.
#[derive(sqlx::FromRow)]
pub(crate) struct VmRow {
    id: i64,
    host_id: i64,
    hs_name: String,
    uuid: String,
    config: String,
    state: String,
    pending_restart: i64,
    last_status: Option<String>,
    /// Sealed by the core; stored and returned as is.
    os_pass: Option<String>,
    owner_id: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl VmRow {
    pub(crate) const COLUMNS: &'static str =
        "v.id, v.host_id, h.name AS hs_name, v.uuid, v.config, v.state, v.pending_restart, \
         v.last_status, v.os_pass, v.owner_id, v.created_at, v.updated_at";
}

impl TryFrom<VmRow> for Vm {
    type Error = StoreError;

    fn try_from(row: VmRow) -> Result<Self, StoreError> {
        Ok(Vm {
            id: row.id,
            host_id: row.host_id,
            hs_name: row.hs_name,
            uuid: row.uuid,
            config: json("vm config", &row.config)?,
            state: PowerState::parse(&row.state),
            pending_restart: flag(row.pending_restart),
            last_status: row.last_status.map(|s| json("vm status", &s)).transpose()?,
            os_pass_sealed: row.os_pass,
            owner_id: row.owner_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A `vm_status` row: one sample of the status series.
#[derive(sqlx::FromRow)]
pub(crate) struct VmStatusRow {
    ts: i64,
    state: String,
    status: String,
}

impl VmStatusRow {
    pub(crate) const COLUMNS: &'static str = "ts, state, status";
}

impl TryFrom<VmStatusRow> for VmStatusSample {
    type Error = StoreError;

    fn try_from(row: VmStatusRow) -> Result<Self, StoreError> {
        Ok(VmStatusSample {
            ts: row.ts,
            state: PowerState::parse(&row.state),
            status: json("vm status", &row.status)?,
        })
    }
}
