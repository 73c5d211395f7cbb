//! Monitoring: the sampler records every running VM's figures every
//! `monitor_every` (CPU, memory, disk and network I/O from the engine),
//! merged with the guest's own latest report; guests post reports with
//! their per-VM secret; history is served by time range; old samples are
//! purged after `monitor_retention`.

use std::time::{Duration, Instant};

use super::{now, Actor, Services};
use crate::engine::{Engine, EngineError, HostContext, PowerState, VmCounters};
use crate::error::CoreError;
use crate::model::{Host, HwStatus, Vm};
use crate::secrets::hashes_equal;

/// A guest report counts as current for this many sampling intervals.
const GUEST_REPORT_FRESH_INTERVALS: i64 = 3;
/// Most samples one history request returns.
pub const MAX_HISTORY_SAMPLES: u32 = 5000;

/// What `upload` answers: the VM and its power state.
#[derive(Debug, Clone)]
pub struct ReportAck {
    pub hs_name: String,
    pub vm_uuid: String,
    pub state: PowerState,
}

#[derive(Debug, Clone)]
pub struct MonitorSample {
    pub ts: i64,
    pub state: String,
    pub status: HwStatus,
}

#[derive(Debug, Clone)]
pub struct MonitorSeries {
    pub vm_uuid: String,
    pub from: i64,
    pub to: i64,
    /// Oldest first.
    pub samples: Vec<MonitorSample>,
}

impl Services {
    /// Run the sampler until the process ends. It samples, and purges
    /// what expired, only while this controller holds the jobs lease, so
    /// controllers sharing a database record each sample once.
    pub fn spawn_monitor(&self) -> tokio::task::JoinHandle<()> {
        let services = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(services.inner.opts.monitor_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if !services.owns_jobs() {
                    continue;
                }
                let n = services.sample_all().await;
                tracing::debug!(sampled = n, "monitor pass");
                services.run_purges().await;
            }
        })
    }

    /// One sampling pass over every running VM; returns how many were
    /// sampled.
    pub async fn sample_all(&self) -> usize {
        let started = std::time::Instant::now();
        let sampled = self.sample_running().await;
        metrics::histogram!("ironidc_monitor_pass_seconds").record(started.elapsed().as_secs_f64());
        sampled
    }

    async fn sample_running(&self) -> usize {
        let limit = self.inner.opts.monitor_host_timeout;
        let passes = self
            .per_host("monitor", limit, |services, host, vms| async move {
                services.sample_host(&host, &vms).await
            })
            .await;
        match passes {
            Ok(sampled) => sampled.into_iter().sum(),
            Err(e) => {
                tracing::warn!(error = %e, "monitor: cannot list VMs and hosts");
                0
            }
        }
    }

    /// Sample the VMs of one host; returns how many were running.
    async fn sample_host(&self, host: &Host, vms: &[Vm]) -> usize {
        let engine = match self.engine_of(host) {
            Ok(engine) => engine,
            Err(e) => {
                tracing::debug!(host = %host.name, error = %e, "monitor: no engine");
                return 0;
            }
        };
        let ctx = self.host_context(host);
        let mut sampled = 0;
        for vm in vms {
            match self.sample_vm(engine.as_ref(), &ctx, vm).await {
                Ok(true) => sampled += 1,
                Ok(false) => {}
                // The host itself does not answer (a remote host whose agent
                // is down): its VMs' state is unknown until it is back, and
                // asking about the others would only wait again.
                Err(CoreError::Engine(EngineError::Unavailable(why))) => {
                    self.host_unreachable("monitor", host, vms, &why).await;
                    return sampled;
                }
                Err(e) => tracing::debug!(vm = %vm.uuid, error = %e, "monitor: no sample"),
            }
        }
        sampled
    }

    /// Sample one VM if it runs; `Ok(false)` when it does not.
    async fn sample_vm(
        &self,
        engine: &dyn Engine,
        ctx: &HostContext,
        vm: &Vm,
    ) -> Result<bool, CoreError> {
        let state = engine.state(ctx, &vm.uuid).await?;
        if !state.is_live() {
            self.forget_counters(vm.id);
            if state != vm.state {
                self.store()
                    .set_vm_state(vm.id, state, vm.pending_restart)
                    .await?;
            }
            return Ok(false);
        }
        let mut status = engine.sample(ctx, &vm.uuid).await?;
        status.source = "host".into();
        if let Ok(counters) = engine.counters(ctx, &vm.uuid).await {
            self.apply_counters(vm.id, &mut status, counters);
        }
        self.merge_guest_report(vm.id, &mut status);
        self.store().record_vm_status(vm.id, state, &status).await?;
        Ok(true)
    }

    /// Counters into the sample, and rates from the previous counters.
    fn apply_counters(&self, vm_id: i64, status: &mut HwStatus, c: VmCounters) {
        status.cpu_time_ms = c.cpu_time_ms;
        status.disk_read_bytes = c.disk_read_bytes;
        status.disk_write_bytes = c.disk_write_bytes;
        status.net_rx_bytes = c.net_rx_bytes;
        status.net_tx_bytes = c.net_tx_bytes;
        let mut map = self
            .inner
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if let Some((then, before)) = map.get(&vm_id) {
            let secs = now.duration_since(*then).as_secs_f64();
            if secs > 0.0 {
                let rate = |a: u64, b: u64| (a.saturating_sub(b) as f64 / 1024.0 / secs) as u64;
                status.network_u = rate(c.net_tx_bytes, before.net_tx_bytes);
                status.network_d = rate(c.net_rx_bytes, before.net_rx_bytes);
            }
        }
        map.insert(vm_id, (now, c));
    }

    fn forget_counters(&self, vm_id: i64) {
        self.inner
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&vm_id);
    }

    /// The guest sees what the host cannot: memory in use inside the VM
    /// and its file systems. A recent report supplies those figures.
    fn merge_guest_report(&self, vm_id: i64, status: &mut HwStatus) {
        let reports = self
            .inner
            .guest_reports
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let fresh_for =
            GUEST_REPORT_FRESH_INTERVALS * self.inner.opts.monitor_every.as_secs() as i64;
        if let Some((at, guest)) = reports.get(&vm_id) {
            if now() - at <= fresh_for.max(60) {
                merge_from_guest(status, guest);
            }
        }
    }

    /// A guest's report (`upload?nic=MAC`), accepted only with the VM's
    /// report secret. Nothing is stored for an unknown MAC or a wrong secret.
    pub async fn accept_report(
        &self,
        mac: &str,
        secret: &str,
        mut report: HwStatus,
    ) -> Result<ReportAck, CoreError> {
        crate::validate::mac_address("nic", mac)?;
        let vm = self
            .store()
            .vm_by_mac(&mac.to_ascii_lowercase())
            .await?
            .ok_or_else(|| CoreError::not_found("nic", mac))?;
        let refused = || CoreError::unauthorized("wrong or missing report secret");
        let sealed = self
            .store()
            .vm_report_secret(vm.id)
            .await?
            .ok_or_else(refused)?;
        let expected = self.inner.secrets.open(&sealed)?;
        if secret.is_empty() || !hashes_equal(secret, &expected) {
            return Err(refused());
        }
        sanitize_report(&mut report);
        report.on_update = now();
        report.source = "guest".into();
        self.inner
            .guest_reports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(vm.id, (now(), report.clone()));
        // The report also lands in the series at once, merged with the
        // latest host figures, so short-lived VMs have history too.
        let mut sample = vm.last_status.clone().unwrap_or_default();
        merge_from_guest(&mut sample, &report);
        sample.on_update = report.on_update;
        self.store()
            .record_vm_status(vm.id, vm.state, &sample)
            .await?;
        Ok(ReportAck {
            hs_name: vm.hs_name.clone(),
            vm_uuid: vm.uuid.clone(),
            state: vm.state,
        })
    }

    /// Samples of a VM between `from` and `to` (unix seconds, inclusive).
    pub async fn vm_monitor(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        from: i64,
        to: i64,
    ) -> Result<MonitorSeries, CoreError> {
        let (_host, vm) = self
            .owned_vm(actor, "vm.instance.read", None, hs_name, vm_uuid)
            .await?;
        for (field, value) in [("from", from), ("to", to)] {
            if value < 0 {
                return Err(CoreError::invalid(
                    field,
                    "must be a unix time (seconds, not negative)",
                ));
            }
        }
        if from > to {
            return Err(CoreError::invalid("from", "must not be after to"));
        }
        let mut samples: Vec<MonitorSample> = self
            .store()
            .vm_history(vm.id, from, to, MAX_HISTORY_SAMPLES)
            .await?
            .into_iter()
            .map(|s| MonitorSample {
                ts: s.ts,
                state: s.state.as_str().to_string(),
                status: s.status,
            })
            .collect();
        samples.reverse();
        Ok(MonitorSeries {
            vm_uuid: vm.uuid,
            from,
            to,
            samples,
        })
    }

    /// The VM's report secret, made on first use.
    pub(crate) async fn report_secret(&self, vm: &Vm) -> Result<String, CoreError> {
        if let Some(sealed) = self.store().vm_report_secret(vm.id).await? {
            return self.inner.secrets.open(&sealed);
        }
        // Hex: the reporter's settings file and its header take it as is.
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let sealed = self.inner.secrets.seal(&secret)?;
        self.store().set_vm_report_secret(vm.id, &sealed).await?;
        Ok(secret)
    }

    /// How often guests should report: the sampling interval.
    pub(crate) fn report_every(&self) -> Duration {
        self.inner.opts.monitor_every
    }
}

/// Guest figures override the host's where the guest knows better.
fn merge_from_guest(status: &mut HwStatus, guest: &HwStatus) {
    if guest.mem_total > 0 {
        status.mem_total = guest.mem_total;
        status.mem_usage = guest.mem_usage;
    }
    if guest.hdd_total > 0 {
        status.hdd_total = guest.hdd_total;
        status.hdd_usage = guest.hdd_usage;
    }
    if status.cpu_total == 0 {
        status.cpu_total = guest.cpu_total;
        status.cpu_usage = guest.cpu_usage;
    }
    if status.source.is_empty() {
        status.source = "guest".into();
    } else if status.source == "host" {
        status.source = "host+guest".into();
    }
}

/// Clamp what a guest claims: it is untrusted input.
fn sanitize_report(r: &mut HwStatus) {
    if !r.cpu_usage.is_finite() {
        r.cpu_usage = 0.0;
    }
    r.cpu_usage = r.cpu_usage.clamp(0.0, 100.0);
    r.mem_usage = r.mem_usage.min(r.mem_total);
    r.hdd_usage = r.hdd_usage.min(r.hdd_total);
    r.ac_status.truncate(16);
    r.cpu_model.truncate(128);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_figures_win_where_the_guest_knows_better() {
        let mut host = HwStatus {
            cpu_total: 2,
            cpu_usage: 30.0,
            mem_total: 512,
            mem_usage: 400,
            source: "host".into(),
            ..HwStatus::default()
        };
        let guest = HwStatus {
            cpu_total: 2,
            cpu_usage: 99.0,
            mem_total: 480,
            mem_usage: 100,
            hdd_total: 64,
            hdd_usage: 10,
            ..HwStatus::default()
        };
        merge_from_guest(&mut host, &guest);
        assert_eq!((host.mem_total, host.mem_usage), (480, 100));
        assert_eq!((host.hdd_total, host.hdd_usage), (64, 10));
        assert_eq!(host.cpu_usage, 30.0, "CPU stays the host's measurement");
        assert_eq!(host.source, "host+guest");
    }

    #[test]
    fn reports_are_clamped() {
        let mut r = HwStatus {
            cpu_usage: f64::NAN,
            mem_total: 10,
            mem_usage: 99,
            ac_status: "x".repeat(100),
            ..HwStatus::default()
        };
        sanitize_report(&mut r);
        assert_eq!(r.cpu_usage, 0.0);
        assert_eq!(r.mem_usage, 10);
        assert_eq!(r.ac_status.len(), 16);
    }
}
