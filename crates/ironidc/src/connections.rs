//! Settings of the HTTP listeners (API and reverse proxy): connection caps
//! and timeouts. Like every setting: file < environment < flag.

use std::time::Duration;

use ironidc_net::http_conn::ConnectionLimits;

use crate::config::FileConfig;

#[derive(clap::Args, Debug, Default)]
pub struct ConnectionArgs {
    /// Open connections one client address may hold, per listener (0: no
    /// cap) [default: 256].
    #[arg(long, global = true, env = "IRONIDC_CONN_PER_ADDRESS")]
    conn_per_address: Option<usize>,
    /// Open connections of a listener in total (0: no cap) [default: 8192].
    #[arg(long, global = true, env = "IRONIDC_CONN_TOTAL")]
    conn_total: Option<usize>,
    /// Seconds a client has to send a complete request head [default: 10].
    #[arg(long, global = true, env = "IRONIDC_HEADER_TIMEOUT")]
    header_timeout: Option<u64>,
    /// Seconds a keep-alive connection may wait for its next request
    /// [default: 60].
    #[arg(long, global = true, env = "IRONIDC_IDLE_TIMEOUT")]
    idle_timeout: Option<u64>,
}

impl ConnectionArgs {
    pub fn resolve(self, file: &FileConfig) -> ConnectionLimits {
        let defaults = ConnectionLimits::default();
        let secs = |flag: Option<u64>, file: Option<u64>, default: Duration| {
            flag.or(file)
                .map(|s| Duration::from_secs(s.max(1)))
                .unwrap_or(default)
        };
        ConnectionLimits {
            per_address: self
                .conn_per_address
                .or(file.conn_per_address)
                .unwrap_or(defaults.per_address),
            total: self
                .conn_total
                .or(file.conn_total)
                .unwrap_or(defaults.total),
            header_timeout: secs(
                self.header_timeout,
                file.header_timeout_secs,
                defaults.header_timeout,
            ),
            idle_timeout: secs(
                self.idle_timeout,
                file.idle_timeout_secs,
                defaults.idle_timeout,
            ),
        }
    }
}
