//! Settings of VM operations: console links and sessions, monitoring,
//! guest status reports, snapshot and backup limits.
//! Like every setting: file < environment < flag.

use std::net::SocketAddr;
use std::time::Duration;

use ironidc_api::ApiOptions;
use ironidc_core::service::ReportUrl;
use ironidc_core::ServiceOptions;

use crate::config::FileConfig;

#[derive(clap::Args, Debug, Default)]
pub struct OperationsArgs {
    /// The controller's URL as browsers reach it, for console links
    /// [default: from the request's Host header].
    #[arg(long, global = true, env = "IRONIDC_PUBLIC_URL")]
    public_url: Option<String>,
    /// Where guests post status reports: a URL, `auto` (each VM's gateway
    /// and the listen port, when listening on all addresses) or `off`
    /// [default: auto].
    #[arg(long, global = true, env = "IRONIDC_GUEST_REPORT_URL")]
    guest_report_url: Option<String>,
    /// Seconds between monitoring samples of each running VM [default: 60].
    #[arg(long, global = true, env = "IRONIDC_MONITOR_SECS")]
    monitor_secs: Option<u64>,
    /// Days monitoring samples are kept [default: 7].
    #[arg(long, global = true, env = "IRONIDC_MONITOR_RETENTION_DAYS")]
    monitor_retention_days: Option<u64>,
    /// Snapshots a VM may hold [default: 5].
    #[arg(long, global = true, env = "IRONIDC_SNAPSHOTS_PER_VM")]
    snapshots_per_vm: Option<u32>,
    /// Backups a VM may hold when its `bak_num` is 0 [default: 3].
    #[arg(long, global = true, env = "IRONIDC_BACKUPS_PER_VM")]
    backups_per_vm: Option<u32>,
    /// Minutes a console session (or unused console link) lives without
    /// traffic [default: 15].
    #[arg(long, global = true, env = "IRONIDC_CONSOLE_IDLE_MINUTES")]
    console_idle_minutes: Option<u64>,
    /// Seconds between checks of an open console's token [default: 10].
    #[arg(long, global = true, env = "IRONIDC_CONSOLE_CHECK_SECS")]
    console_check_secs: Option<u64>,
}

/// The resolved operation settings.
#[derive(Debug, Clone)]
pub struct OperationsConfig {
    pub public_url: Option<String>,
    pub report_url: ReportUrl,
    pub monitor_every: Duration,
    pub monitor_retention: Duration,
    pub snapshots_per_vm: u32,
    pub backups_per_vm: u32,
    pub console_idle: Duration,
    pub console_check_every: Duration,
}

impl OperationsArgs {
    pub fn resolve(
        self,
        file: &FileConfig,
        listen: SocketAddr,
    ) -> Result<OperationsConfig, String> {
        let report = self
            .guest_report_url
            .or_else(|| file.guest_report_url.clone())
            .unwrap_or_else(|| "auto".into());
        Ok(OperationsConfig {
            public_url: self
                .public_url
                .or_else(|| file.public_url.clone())
                .filter(|u| !u.is_empty()),
            report_url: report_url(&report, listen)?,
            monitor_every: Duration::from_secs(
                self.monitor_secs.or(file.monitor_secs).unwrap_or(60).max(1),
            ),
            monitor_retention: Duration::from_secs(
                86_400
                    * self
                        .monitor_retention_days
                        .or(file.monitor_retention_days)
                        .unwrap_or(7)
                        .max(1),
            ),
            snapshots_per_vm: self.snapshots_per_vm.or(file.snapshots_per_vm).unwrap_or(5),
            backups_per_vm: self.backups_per_vm.or(file.backups_per_vm).unwrap_or(3),
            console_idle: Duration::from_secs(
                60 * self
                    .console_idle_minutes
                    .or(file.console_idle_minutes)
                    .unwrap_or(15)
                    .max(1),
            ),
            console_check_every: Duration::from_secs(
                self.console_check_secs
                    .or(file.console_check_secs)
                    .unwrap_or(10)
                    .max(1),
            ),
        })
    }
}

/// `off`, `auto` or an http(s) URL. `auto` needs a listener guests can
/// reach: on all addresses each guest uses its gateway; on one specific
/// non-loopback address, that address; on loopback, nothing.
fn report_url(value: &str, listen: SocketAddr) -> Result<ReportUrl, String> {
    match value.trim() {
        "off" | "" => Ok(ReportUrl::Off),
        "auto" if listen.ip().is_unspecified() => Ok(ReportUrl::GatewayPort(listen.port())),
        "auto" if listen.ip().is_loopback() => Ok(ReportUrl::Off),
        "auto" => Ok(ReportUrl::Fixed(format!("http://{listen}"))),
        url if (url.starts_with("http://") || url.starts_with("https://"))
            && !url.contains(['\'', '"', ' ', '\\']) =>
        {
            Ok(ReportUrl::Fixed(url.trim_end_matches('/').to_string()))
        }
        other => Err(format!(
            "guest_report_url: {other:?} is not off, auto or an http(s) URL"
        )),
    }
}

impl OperationsConfig {
    pub fn apply(&self, opts: &mut ServiceOptions) {
        opts.report_url = self.report_url.clone();
        opts.monitor_every = self.monitor_every;
        opts.monitor_retention = self.monitor_retention;
        opts.snapshots_per_vm = self.snapshots_per_vm;
        opts.backups_per_vm = self.backups_per_vm;
        opts.console_idle = self.console_idle;
    }

    pub fn apply_api(&self, api: &mut ApiOptions) {
        api.public_url = self.public_url.clone();
        api.console_check_every = self.console_check_every;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn report_url_follows_the_listener() {
        let any: SocketAddr = "0.0.0.0:1880".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:1880".parse().unwrap();
        let one: SocketAddr = "10.0.0.2:1880".parse().unwrap();
        assert_eq!(
            report_url("auto", any).unwrap(),
            ReportUrl::GatewayPort(1880)
        );
        assert_eq!(report_url("auto", lo).unwrap(), ReportUrl::Off);
        assert_eq!(
            report_url("auto", one).unwrap(),
            ReportUrl::Fixed("http://10.0.0.2:1880".into())
        );
        assert_eq!(
            report_url("http://x:1/", lo).unwrap(),
            ReportUrl::Fixed("http://x:1".into())
        );
        assert!(report_url("ftp://x", lo).is_err());
        assert!(report_url("http://x'y", lo).is_err());
    }
}
