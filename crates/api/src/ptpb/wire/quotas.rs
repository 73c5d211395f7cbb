//! Limits and usage, as a user or role body sets them and as replies
//! show them.

use ironidc_core::accounts::{Quota, Usage};
use ironidc_core::service::QuotaReport;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::lenient::opt_number;

/// Resource limits to set; an absent (or null) key sets no limit. Numbers
/// may come as text. An unknown key is refused: a misspelt limit would
/// otherwise silently be no limit.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaBody {
    #[serde(deserialize_with = "opt_number")]
    #[schema(value_type = Option<u64>)]
    vms: Option<u64>,
    #[serde(deserialize_with = "opt_number")]
    #[schema(value_type = Option<u64>)]
    vcpus: Option<u64>,
    #[serde(deserialize_with = "opt_number")]
    #[schema(value_type = Option<u64>)]
    memory_mb: Option<u64>,
    #[serde(deserialize_with = "opt_number")]
    #[schema(value_type = Option<u64>)]
    disk_mb: Option<u64>,
    #[serde(deserialize_with = "opt_number")]
    #[schema(value_type = Option<u64>)]
    nat_rules: Option<u64>,
    #[serde(deserialize_with = "opt_number")]
    #[schema(value_type = Option<u64>)]
    proxies: Option<u64>,
    #[serde(deserialize_with = "opt_number")]
    #[schema(value_type = Option<u64>)]
    snapshots: Option<u64>,
    #[serde(deserialize_with = "opt_number")]
    #[schema(value_type = Option<u64>)]
    backups: Option<u64>,
}

impl From<QuotaBody> for Quota {
    fn from(b: QuotaBody) -> Self {
        let QuotaBody {
            vms,
            vcpus,
            memory_mb,
            disk_mb,
            nat_rules,
            proxies,
            snapshots,
            backups,
        } = b;
        Quota {
            vms,
            vcpus,
            memory_mb,
            disk_mb,
            nat_rules,
            proxies,
            snapshots,
            backups,
        }
    }
}

/// Resource limits; an absent key sets no limit (a key is never null).
#[derive(Serialize, ToSchema)]
pub struct QuotaReply {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u64)]
    vms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u64)]
    vcpus: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u64)]
    memory_mb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u64)]
    disk_mb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u64)]
    nat_rules: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u64)]
    proxies: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u64)]
    snapshots: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u64)]
    backups: Option<u64>,
}

copy_fields!(Quota => QuotaReply { vms, vcpus, memory_mb, disk_mb, nat_rules, proxies, snapshots, backups });

/// A user's limits and usage.
#[derive(Serialize, ToSchema)]
pub struct QuotaReportReply {
    user_id: i64,
    /// The limits in force (absent: unlimited).
    limits: QuotaReply,
    usage: UsageReply,
}

impl From<QuotaReport> for QuotaReportReply {
    fn from(r: QuotaReport) -> Self {
        let QuotaReport {
            user_id,
            limits,
            usage,
        } = r;
        Self {
            user_id,
            limits: limits.into(),
            usage: usage.into(),
        }
    }
}

/// What a user holds now, counted over the VMs they own.
#[derive(Serialize, ToSchema)]
pub struct UsageReply {
    vms: u64,
    vcpus: u64,
    memory_mb: u64,
    disk_mb: u64,
    nat_rules: u64,
    proxies: u64,
}

copy_fields!(Usage => UsageReply { vms, vcpus, memory_mb, disk_mb, nat_rules, proxies });
