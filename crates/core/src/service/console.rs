//! Console tokens: `remote` issues a one-time token bound to the VM and the
//! caller; the WebSocket relay attaches with it once. The session then lives
//! while bytes flow and ends after `console_idle` without traffic, when the
//! token is revoked (logout), or when its user loses the VM.

use std::sync::Arc;

use super::journal::Subject;
use super::{now, Actor, Services};
use crate::engine::ConsoleEndpoint;
use crate::error::CoreError;
use crate::secrets::{new_token, token_hash};
use crate::store::{ConsoleToken, NewConsoleToken};

/// What `remote` hands out. The token is shown once and stored hashed.
#[derive(Debug, Clone)]
pub struct ConsoleTicket {
    pub token: String,
    /// The noVNC page for this token, relative to the controller's URL.
    pub path: String,
    pub idle_timeout_secs: u64,
}

#[derive(Debug, Clone)]
pub struct ConsoleTokenView {
    pub id: i64,
    pub actor: String,
    pub user_id: Option<i64>,
    pub created_at: i64,
    pub last_used_at: i64,
    pub opened_at: Option<i64>,
    pub revoked: bool,
    /// Still usable: not revoked and not idle for too long.
    pub live: bool,
}

#[derive(Debug, Clone)]
pub struct ConsoleState {
    pub vm_uuid: String,
    /// A console can be opened now (the VM runs).
    pub available: bool,
    pub tokens: Vec<ConsoleTokenView>,
}

/// An attached console session; the relay asks it periodically whether to
/// go on.
pub struct ConsoleLease {
    services: Services,
    token_id: i64,
    token_hash: String,
}

/// Where the relay connects, and the lease that keeps the session honest.
pub struct ConsoleAttachment {
    pub endpoint: ConsoleEndpoint,
    pub lease: Arc<ConsoleLease>,
    pub vm_uuid: String,
}

impl ConsoleLease {
    /// Records traffic and says whether the session may continue.
    pub async fn still_valid(&self, active: bool) -> bool {
        let now = now();
        if active {
            if let Err(e) = self
                .services
                .store()
                .touch_console_token(self.token_id, now)
                .await
            {
                tracing::warn!(error = %e, "could not record console activity");
            }
        }
        let token = match self
            .services
            .store()
            .console_token_by_hash(&self.token_hash)
            .await
        {
            Ok(Some(token)) => token,
            Ok(None) => return false,
            // A database hiccup does not cut a working session.
            Err(e) => {
                tracing::warn!(error = %e, "could not check a console token");
                return true;
            }
        };
        if !self.services.token_live(&token, now) {
            return false;
        }
        // The user must still be allowed to see this VM: an owner change,
        // a lost permission, a disabled user or a deleted VM end the session.
        match self.services.console_vm_if_allowed(&token).await {
            Ok(found) => found.is_some(),
            Err(e) => {
                tracing::warn!(error = %e, "could not re-check a console session");
                true
            }
        }
    }
}

impl Services {
    fn token_live(&self, token: &ConsoleToken, now: i64) -> bool {
        !token.revoked && now - token.last_used_at <= self.inner.opts.console_idle.as_secs() as i64
    }

    fn console_view(&self, token: ConsoleToken, now: i64) -> ConsoleTokenView {
        ConsoleTokenView {
            live: self.token_live(&token, now),
            id: token.id,
            actor: token.actor,
            user_id: token.user_id,
            created_at: token.created_at,
            last_used_at: token.last_used_at,
            opened_at: token.opened_at,
            revoked: token.revoked,
        }
    }

    /// Issue a console token for a running VM (`remote`, billing `enable`).
    pub async fn console_open(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
    ) -> Result<ConsoleTicket, CoreError> {
        let (host, vm) = self
            .owned_vm(
                actor,
                "vm.console.open",
                Some("vm.console.open"),
                hs_name,
                vm_uuid,
            )
            .await?;
        let checked = async {
            self.ensure_not_busy(&vm, "opening the console").await?;
            // Refuse now rather than hand out a link that cannot work.
            self.engine_of(&host)?
                .console_endpoint(&self.host_context(&host), vm_uuid)
                .await?;
            Ok(())
        }
        .await;
        let token = new_token();
        let hash = token_hash(&token);
        self.run_audited(
            actor,
            "vm.console.open",
            Subject::vm(hs_name, vm_uuid),
            checked,
            async |(), _op| {
                self.store()
                    .insert_console_token(&NewConsoleToken {
                        token_hash: hash,
                        vm_id: vm.id,
                        user_id: actor.user_id,
                        actor: actor.name.clone(),
                    })
                    .await?;
                Ok(ConsoleTicket {
                    path: format!("/console/vnc.html?token={token}"),
                    token,
                    idle_timeout_secs: self.inner.opts.console_idle.as_secs(),
                })
            },
            |_| serde_json::json!({"vm_uuid": vm_uuid}),
        )
        .await
    }

    /// The VM's console tokens and whether a console can be opened (`state`).
    pub async fn console_state(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
    ) -> Result<ConsoleState, CoreError> {
        let (host, vm) = self
            .owned_vm(actor, "vm.console.open", None, hs_name, vm_uuid)
            .await?;
        let available = self
            .engine_of(&host)?
            .console_endpoint(&self.host_context(&host), vm_uuid)
            .await
            .is_ok();
        let now = now();
        let tokens = self
            .store()
            .console_tokens(vm.id)
            .await?
            .into_iter()
            // Users see their own tokens; operators see all.
            .filter(|t| actor.sees_all_vms() || t.user_id == actor.user_id)
            .map(|t| self.console_view(t, now))
            .collect();
        Ok(ConsoleState {
            vm_uuid: vm.uuid,
            available,
            tokens,
        })
    }

    /// Revoke console tokens of the VM (`logout`): the caller's own, or
    /// everyone's for an operator. Open sessions end within seconds.
    pub async fn console_revoke(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
    ) -> Result<u64, CoreError> {
        let (_host, vm) = self
            .owned_vm(
                actor,
                "vm.console.open",
                Some("vm.console.revoke"),
                hs_name,
                vm_uuid,
            )
            .await?;
        let whose = if actor.sees_all_vms() {
            None
        } else {
            actor.user_id
        };
        self.run_audited(
            actor,
            "vm.console.revoke",
            Subject::vm(hs_name, vm_uuid),
            Ok(()),
            async |(), _op| Ok(self.store().revoke_console_tokens(vm.id, whose).await?),
            |n| serde_json::json!({"revoked": n}),
        )
        .await
    }

    /// Whether `token` could attach now, without using it up.
    pub async fn console_token_usable(&self, token: &str) -> Result<(), CoreError> {
        self.checked_console_token(token).await.map(|_| ())
    }

    /// A console token that exists, is unused and live, and whose user may
    /// still open this VM's console.
    async fn checked_console_token(
        &self,
        token: &str,
    ) -> Result<(ConsoleToken, crate::model::Host, crate::model::Vm, String), CoreError> {
        let refused =
            || CoreError::unauthorized("console token is unknown, used, expired or revoked");
        if token.is_empty() || token.len() > 128 {
            return Err(refused());
        }
        let hash = token_hash(token);
        let stored = self
            .store()
            .console_token_by_hash(&hash)
            .await?
            .ok_or_else(refused)?;
        if stored.opened_at.is_some() || !self.token_live(&stored, now()) {
            return Err(refused());
        }
        let (host, vm) = self
            .console_vm_if_allowed(&stored)
            .await?
            .ok_or_else(refused)?;
        Ok((stored, host, vm, hash))
    }

    /// The token's VM and host when the VM still exists and the token's
    /// user (enabled, holding `vm.console.open`) may still see it; `None`
    /// otherwise. The root token's consoles need only the VM.
    async fn console_vm_if_allowed(
        &self,
        token: &ConsoleToken,
    ) -> Result<Option<(crate::model::Host, crate::model::Vm)>, CoreError> {
        let Some((host, vm)) = self.vm_by_id(token.vm_id).await? else {
            return Ok(None);
        };
        if let Some(user_id) = token.user_id {
            let Ok(permissions) = self.permissions_of(user_id).await else {
                return Ok(None);
            };
            if self.enabled_user(user_id).await.is_err() {
                return Ok(None);
            }
            let may_all = permissions.contains("vm.all.manage");
            if !permissions.contains("vm.console.open")
                || !(may_all || vm.owner_id == Some(user_id))
            {
                return Ok(None);
            }
        }
        Ok(Some((host, vm)))
    }

    /// Attach a WebSocket with a console token: it must be usable (see
    /// `checked_console_token`); attaching uses it up.
    pub async fn console_attach(&self, token: &str) -> Result<ConsoleAttachment, CoreError> {
        let (stored, host, vm, hash) = self.checked_console_token(token).await?;
        let endpoint = self
            .engine_of(&host)?
            .console_endpoint(&self.host_context(&host), &vm.uuid)
            .await?;
        if !self.store().open_console_token(stored.id, now()).await? {
            return Err(CoreError::unauthorized(
                "console token is unknown, used, expired or revoked",
            ));
        }
        tracing::info!(vm = %vm.uuid, actor = %stored.actor, "console attached");
        Ok(ConsoleAttachment {
            endpoint,
            lease: Arc::new(ConsoleLease {
                services: self.clone(),
                token_id: stored.id,
                token_hash: hash,
            }),
            vm_uuid: vm.uuid,
        })
    }
}
