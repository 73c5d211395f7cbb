//! Domain bindings of a VM through the reverse proxy (`proxys/*`), their
//! certificates (self-signed, uploaded, ACME) and renewal.

use std::net::{IpAddr, SocketAddr};

use super::journal::Subject;
use super::quotas::Demand;
use super::{now, Actor, Services};
use crate::error::CoreError;
use crate::model::{Host, ProxyBinding, Vm};
use crate::network::{CertificatePem, ProxyRoute};
use crate::store::Scope;
use crate::validate;

/// Renew a certificate when fewer than this many seconds are left.
const RENEW_BEFORE: i64 = 30 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct ProxyView {
    pub index: usize,
    pub domain: String,
    pub backend_ip: String,
    pub backend_port: u16,
    pub ssl_enabled: bool,
    pub ssl_type: String,
    /// `active`, `pending` (ACME running), `failed` or `none` (no SSL).
    pub cert_status: &'static str,
    pub cert_not_after: Option<i64>,
    pub cert_error: Option<String>,
    pub description: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct ProxyInput {
    pub domain: String,
    /// One of the VM's addresses; empty: its first IPv4 address.
    pub backend_ip: String,
    /// Default 80.
    pub backend_port: u32,
    pub ssl_enabled: bool,
    /// `letsencrypt`, `custom` or `self_signed`; required with `ssl_enabled`.
    pub ssl_type: String,
    /// PEM chain and key for `custom`.
    pub ssl_cert: String,
    pub ssl_key: String,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct CreatedProxy {
    pub proxy: ProxyView,
    /// The ACME issuance task, for `letsencrypt`.
    pub task_id: Option<i64>,
}

impl Services {
    pub async fn list_proxies(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
    ) -> Result<Vec<ProxyView>, CoreError> {
        let (_, vm) = self
            .owned_vm(actor, "vm.proxy.read", None, hs_name, vm_uuid)
            .await?;
        let rows = self.store().proxies(Scope::Vm(vm.id)).await?;
        Ok(rows
            .into_iter()
            .enumerate()
            .map(|(i, p)| proxy_view(i, p))
            .collect())
    }

    pub async fn add_proxy(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        input: ProxyInput,
    ) -> Result<CreatedProxy, CoreError> {
        let (host, vm) = self
            .owned_vm(
                actor,
                "vm.proxy.write",
                Some("vm.proxy.add"),
                hs_name,
                vm_uuid,
            )
            .await?;
        let one = Demand {
            proxies: 1,
            ..Demand::default()
        };
        let checked = match self.reserve_quota(vm.owner_id, one).await {
            Ok(guard) => self
                .check_proxy_input(&host, &vm, &input)
                .await
                .map(|r| (r, guard)),
            Err(e) => Err(e),
        };
        // The quota guard is held until the binding is written.
        self.run_audited(
            actor,
            "vm.proxy.add",
            Subject::vm(hs_name, vm_uuid),
            checked,
            async |(row, _quota_guard), op| {
                let row =
                    self.store().insert_proxy(&row).await.map_err(|e| {
                        match CoreError::from(e) {
                            CoreError::Conflict(_) => CoreError::Conflict(format!(
                                "domain {} is already bound",
                                row.domain
                            )),
                            other => other,
                        }
                    })?;
                let services = self.clone();
                let id = row.id;
                op.undo_on_failure("remove the binding row", async move {
                    services.store().delete_proxy(id).await?;
                    services.refresh_proxy_routes().await
                });
                self.refresh_proxy_routes().await?;
                let task_id = if row.ssl_enabled && row.ssl_type == "letsencrypt" {
                    Some(
                        self.spawn_issuance(actor, &host, vm_uuid, row.id, row.domain.clone())
                            .await?,
                    )
                } else {
                    None
                };
                let rows = self.store().proxies(Scope::Vm(vm.id)).await?;
                let index = rows.iter().position(|p| p.id == row.id).unwrap_or(0);
                Ok(CreatedProxy {
                    proxy: proxy_view(index, row),
                    task_id,
                })
            },
            |p| serde_json::json!({"domain": p.proxy.domain}),
        )
        .await
    }

    async fn check_proxy_input(
        &self,
        host: &Host,
        vm: &Vm,
        input: &ProxyInput,
    ) -> Result<ProxyBinding, CoreError> {
        let domain = validate::domain_name("domain", &input.domain)?;
        let addresses = self.store().addresses(Scope::Vm(vm.id)).await?;
        let backend_ip = if input.backend_ip.trim().is_empty() {
            addresses
                .iter()
                .find(|a| a.vers == "ipv4")
                .or_else(|| addresses.first())
                .map(|a| a.address.clone())
                .ok_or_else(|| {
                    CoreError::invalid("backend_ip", "the VM has no address to proxy to")
                })?
        } else {
            let ip: IpAddr = input
                .backend_ip
                .trim()
                .parse()
                .map_err(|_| CoreError::invalid("backend_ip", "must be an IP address"))?;
            let ip = ip.to_string();
            if !addresses.iter().any(|a| a.address == ip) {
                return Err(CoreError::invalid(
                    "backend_ip",
                    format!("{ip} is not an address of this VM"),
                ));
            }
            ip
        };
        let backend_port = match input.backend_port {
            0 => 80,
            p => u16::try_from(p)
                .map_err(|_| CoreError::invalid("backend_port", "must be between 1 and 65535"))?,
        };
        if input.description.chars().count() > 200 {
            return Err(CoreError::invalid(
                "description",
                "must be at most 200 characters",
            ));
        }
        let existing = self.store().proxies(Scope::Vm(vm.id)).await?;
        if vm.config.web_num > 0 && existing.len() >= vm.config.web_num as usize {
            return Err(CoreError::Conflict(format!(
                "the VM has {} domain bindings, its limit (web_num)",
                vm.config.web_num
            )));
        }
        let mut row = ProxyBinding {
            id: 0,
            host_id: host.id,
            vm_id: vm.id,
            domain: domain.clone(),
            backend_ip,
            backend_port,
            ssl_enabled: input.ssl_enabled,
            ssl_type: String::new(),
            cert_pem: None,
            key_sealed: None,
            cert_not_after: None,
            cert_error: None,
            description: input.description.clone(),
            created_at: 0,
        };
        if !input.ssl_enabled {
            if !input.ssl_type.is_empty() && input.ssl_type != "none" {
                return Err(CoreError::invalid(
                    "ssl_type",
                    "set ssl_enabled to use a certificate",
                ));
            }
            return Ok(row);
        }
        row.ssl_type = input.ssl_type.trim().to_ascii_lowercase();
        let pem = match row.ssl_type.as_str() {
            "letsencrypt" => None,
            "self_signed" => Some(self.network().self_signed_certificate(&domain)?),
            "custom" => {
                if input.ssl_cert.trim().is_empty() {
                    return Err(CoreError::invalid(
                        "ssl_cert",
                        "required for ssl_type custom",
                    ));
                }
                if input.ssl_key.trim().is_empty() {
                    return Err(CoreError::invalid(
                        "ssl_key",
                        "required for ssl_type custom",
                    ));
                }
                Some(CertificatePem {
                    cert_pem: input.ssl_cert.clone(),
                    key_pem: input.ssl_key.clone(),
                })
            }
            "" => {
                return Err(CoreError::invalid(
                    "ssl_type",
                    "required when ssl_enabled: letsencrypt, custom or self_signed",
                ))
            }
            _ => {
                return Err(CoreError::invalid(
                    "ssl_type",
                    "must be letsencrypt, custom or self_signed",
                ))
            }
        };
        if let Some(pem) = pem {
            let not_after = self
                .network()
                .inspect_certificate(&pem, &domain)
                .map_err(|e| CoreError::invalid("ssl_cert", e.to_string()))?;
            row.key_sealed = Some(self.inner.secrets.seal(&pem.key_pem)?);
            row.cert_pem = Some(pem.cert_pem);
            row.cert_not_after = Some(not_after);
        }
        Ok(row)
    }

    pub async fn delete_proxy(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        index: usize,
    ) -> Result<ProxyView, CoreError> {
        let (_, vm) = self
            .owned_vm(
                actor,
                "vm.proxy.write",
                Some("vm.proxy.delete"),
                hs_name,
                vm_uuid,
            )
            .await?;
        let rows = self.store().proxies(Scope::Vm(vm.id)).await?;
        let checked = rows
            .get(index)
            .cloned()
            .ok_or_else(|| CoreError::not_found("proxy index", index.to_string()));
        self.run_audited(
            actor,
            "vm.proxy.delete",
            Subject::vm(hs_name, vm_uuid),
            checked,
            async |row, _op| {
                self.store().delete_proxy(row.id).await?;
                self.refresh_proxy_routes().await?;
                Ok(proxy_view(index, row))
            },
            |p| serde_json::json!({"domain": p.domain}),
        )
        .await
    }

    /// Hand the proxy every binding of every host, certificates unsealed.
    pub async fn refresh_proxy_routes(&self) -> Result<(), CoreError> {
        let rows = self.store().proxies(Scope::All).await?;
        let mut routes = Vec::with_capacity(rows.len());
        for p in rows {
            let Ok(ip) = p.backend_ip.parse::<IpAddr>() else {
                continue;
            };
            let tls = match (p.ssl_enabled, p.cert_pem, p.key_sealed) {
                (true, Some(cert_pem), Some(sealed)) => Some(CertificatePem {
                    cert_pem,
                    key_pem: self.inner.secrets.open(&sealed)?,
                }),
                _ => None,
            };
            routes.push(ProxyRoute {
                domain: p.domain,
                backend: SocketAddr::new(ip, p.backend_port),
                tls,
            });
        }
        for (domain, why) in self.network().set_proxy_routes(routes) {
            tracing::warn!(%domain, reason = %why, "certificate not loaded; the domain is served over HTTP only");
        }
        Ok(())
    }

    /// Issue an ACME certificate in the background, as a tracked task.
    async fn spawn_issuance(
        &self,
        actor: &Actor,
        host: &Host,
        vm_uuid: &str,
        proxy_id: i64,
        domain: String,
    ) -> Result<i64, CoreError> {
        let services = self.clone();
        self.spawn_audited(
            actor,
            "vm.proxy.certificate",
            Subject::vm(&host.name, vm_uuid),
            Ok(domain),
            move |domain, op| async move {
                op.step("acme order", 10).await;
                let res = services
                    .issue_and_store(proxy_id, &domain)
                    .await
                    .map(|not_after| (domain, not_after));
                (op, res)
            },
            |(domain, not_after)| serde_json::json!({"domain": domain, "not_after": not_after}),
        )
        .await
    }

    async fn issue_and_store(&self, proxy_id: i64, domain: &str) -> Result<i64, CoreError> {
        let issued = self.network().issue_certificate(domain).await;
        let pem = match issued {
            Ok(pem) => pem,
            Err(e) => {
                // The current certificate (if any) keeps serving.
                self.store()
                    .set_proxy_error(proxy_id, &e.to_string())
                    .await?;
                return Err(e.into());
            }
        };
        let not_after = self.network().inspect_certificate(&pem, domain)?;
        let sealed = self.inner.secrets.seal(&pem.key_pem)?;
        self.store()
            .set_proxy_certificate(
                proxy_id,
                Some(&pem.cert_pem),
                Some(&sealed),
                Some(not_after),
                None,
            )
            .await?;
        self.refresh_proxy_routes().await?;
        Ok(not_after)
    }

    /// Renew ACME and self-signed certificates that expire within 30 days
    /// (and retry ACME bindings that have none). Run periodically.
    pub async fn renew_certificates(&self) -> Result<usize, CoreError> {
        let mut renewed = 0;
        for p in self.store().proxies(Scope::All).await? {
            if !p.ssl_enabled {
                continue;
            }
            let due = p.cert_not_after.is_none_or(|t| t - now() < RENEW_BEFORE);
            if !due {
                continue;
            }
            let result = match p.ssl_type.as_str() {
                "letsencrypt" => self.issue_and_store(p.id, &p.domain).await.map(|_| ()),
                "self_signed" => {
                    async {
                        let pem = self.network().self_signed_certificate(&p.domain)?;
                        let not_after = self.network().inspect_certificate(&pem, &p.domain)?;
                        let sealed = self.inner.secrets.seal(&pem.key_pem)?;
                        self.store()
                            .set_proxy_certificate(
                                p.id,
                                Some(&pem.cert_pem),
                                Some(&sealed),
                                Some(not_after),
                                None,
                            )
                            .await?;
                        Ok::<_, CoreError>(())
                    }
                    .await
                }
                // An uploaded certificate is the operator's to replace.
                _ => continue,
            };
            match result {
                Ok(()) => renewed += 1,
                Err(e) => {
                    tracing::warn!(domain = %p.domain, error = %e, "certificate renewal failed")
                }
            }
        }
        if renewed > 0 {
            self.refresh_proxy_routes().await?;
        }
        Ok(renewed)
    }
}

fn proxy_view(index: usize, p: ProxyBinding) -> ProxyView {
    let cert_status = match (p.ssl_enabled, &p.cert_pem, &p.cert_error) {
        (false, _, _) => "none",
        (true, Some(_), _) => "active",
        (true, None, Some(_)) => "failed",
        (true, None, None) => "pending",
    };
    ProxyView {
        index,
        domain: p.domain,
        backend_ip: p.backend_ip,
        backend_port: p.backend_port,
        ssl_enabled: p.ssl_enabled,
        ssl_type: p.ssl_type,
        cert_status,
        cert_not_after: p.cert_not_after,
        cert_error: p.cert_error,
        description: p.description,
        created_at: p.created_at,
    }
}
