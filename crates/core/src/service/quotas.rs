//! Quotas: what a user may hold, counted over the VMs they own. A limit set
//! on the user wins; otherwise the most generous limit among the user's
//! enabled roles applies; a limit no source sets is unlimited. VMs without
//! an owner (the operator's) count against nobody.

use tokio::sync::OwnedMutexGuard;

use super::{Actor, Services};
use crate::accounts::{Quota, Usage};
use crate::error::CoreError;

/// How much a change adds to an owner's usage.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Demand {
    pub vms: u64,
    pub vcpus: u64,
    pub memory_mb: u64,
    pub disk_mb: u64,
    pub nat_rules: u64,
    pub proxies: u64,
}

#[derive(Debug, Clone)]
pub struct QuotaReport {
    pub user_id: i64,
    /// The limits in force (absent = unlimited).
    pub limits: Quota,
    pub usage: Usage,
}

impl Services {
    /// A user's limits and usage: their own, or anyone's with
    /// `system.user.read`.
    pub async fn quota_report(
        &self,
        actor: &Actor,
        user_id: i64,
    ) -> Result<QuotaReport, CoreError> {
        if actor.user_id != Some(user_id) {
            actor.require("system.user.read")?;
        }
        if self.store().user_by_id(user_id).await?.is_none() {
            return Err(CoreError::not_found("user", user_id.to_string()));
        }
        Ok(QuotaReport {
            user_id,
            limits: self.effective_quota(user_id).await?,
            usage: self.store().usage_of(user_id).await?,
        })
    }

    pub(crate) async fn effective_quota(&self, user_id: i64) -> Result<Quota, CoreError> {
        let user = self
            .store()
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| CoreError::not_found("user", user_id.to_string()))?;
        let mut roles = Vec::new();
        for id in &user.roles {
            if let Some(role) = self.store().role_by_id(*id).await? {
                if role.enabled {
                    roles.push(role.quota);
                }
            }
        }
        Ok(merge(&user.quota, &roles))
    }

    /// Take the owner's lock and refuse when `demand` would take them over
    /// a limit. The caller holds the returned guard until its write, so two
    /// changes cannot both fit into the last free room. VMs without an
    /// owner count against nobody and need neither.
    pub(crate) async fn reserve_quota(
        &self,
        owner: Option<i64>,
        demand: Demand,
    ) -> Result<Option<OwnedMutexGuard<()>>, CoreError> {
        let Some(id) = owner else { return Ok(None) };
        let guard = self.vm_lock(&format!("owner:{id}")).lock_owned().await;
        self.check_quota(owner, demand).await?;
        Ok(Some(guard))
    }

    async fn check_quota(&self, owner: Option<i64>, demand: Demand) -> Result<(), CoreError> {
        let Some(owner) = owner else { return Ok(()) };
        let limits = self.effective_quota(owner).await?;
        let used = self.store().usage_of(owner).await?;
        let checks = [
            ("vms", limits.vms, used.vms, demand.vms),
            ("vcpus", limits.vcpus, used.vcpus, demand.vcpus),
            (
                "memory_mb",
                limits.memory_mb,
                used.memory_mb,
                demand.memory_mb,
            ),
            ("disk_mb", limits.disk_mb, used.disk_mb, demand.disk_mb),
            (
                "nat_rules",
                limits.nat_rules,
                used.nat_rules,
                demand.nat_rules,
            ),
            ("proxies", limits.proxies, used.proxies, demand.proxies),
        ];
        for (quota, limit, used, more) in checks {
            if more == 0 {
                continue;
            }
            if let Some(limit) = limit {
                let requested = used.saturating_add(more);
                if requested > limit {
                    return Err(CoreError::QuotaExceeded {
                        quota,
                        limit,
                        requested,
                    });
                }
            }
        }
        Ok(())
    }
}

/// The user's own limit per field, else the largest of the roles'.
fn merge(user: &Quota, roles: &[Quota]) -> Quota {
    let pick = |own: Option<u64>, of_role: fn(&Quota) -> Option<u64>| {
        own.or_else(|| roles.iter().filter_map(of_role).max())
    };
    Quota {
        vms: pick(user.vms, |q| q.vms),
        vcpus: pick(user.vcpus, |q| q.vcpus),
        memory_mb: pick(user.memory_mb, |q| q.memory_mb),
        disk_mb: pick(user.disk_mb, |q| q.disk_mb),
        nat_rules: pick(user.nat_rules, |q| q.nat_rules),
        proxies: pick(user.proxies, |q| q.proxies),
        snapshots: pick(user.snapshots, |q| q.snapshots),
        backups: pick(user.backups, |q| q.backups),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_limit_wins_then_most_generous_role() {
        let user = Quota {
            vms: Some(1),
            ..Quota::default()
        };
        let roles = [
            Quota {
                vms: Some(5),
                vcpus: Some(4),
                ..Quota::default()
            },
            Quota {
                vcpus: Some(8),
                ..Quota::default()
            },
        ];
        let q = merge(&user, &roles);
        assert_eq!(q.vms, Some(1));
        assert_eq!(q.vcpus, Some(8));
        assert_eq!(q.memory_mb, None);
        assert_eq!(merge(&Quota::default(), &[]), Quota::default());
    }
}
