//! What the benches share: the real `ironidc serve` on a free port with a
//! temporary data directory (SQLite, proxy and rate limits off, warnings
//! only), and an HTTP client with the TLS provider installed.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const TOKEN: &str = "bench-root-token-0123456789";
pub const ADMIN_PASSWORD: &str = "Bench-Admin-Passw0rd";

pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client with `timeout`. Installs the TLS provider first: reqwest
/// panics without one when its features are unified with crates that pick
/// none.
pub fn client(timeout: Duration) -> reqwest::blocking::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(1)
        .build()
        .unwrap()
}

/// Start the controller on `data`; returns once it answers.
pub fn start(data: &Path) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_ironidc"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data)
        .env("IRONIDC_TOKEN", TOKEN)
        .env("IRONIDC_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("IRONIDC_ACCEL", "tcg")
        .env("IRONIDC_LOG", "warn")
        .env("IRONIDC_PROXY_HTTP", "off")
        .env("IRONIDC_PROXY_HTTPS", "off")
        // A bench is one client firing as fast as it can.
        .env("IRONIDC_RATE_LIMIT_IP", "0")
        .env("IRONIDC_RATE_LIMIT_USER", "0")
        .env("IRONIDC_RATE_LIMIT_LOGIN", "0")
        .env_remove("IRONIDC_DATABASE_URL")
        .env_remove("IRONIDC_TRUSTED_PROXIES")
        .env_remove("IRONIDC_ACCESS_TOKEN_SECS")
        .env_remove("IRONIDC_REFRESH_TOKEN_SECS")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let c = client(Duration::from_secs(5));
    for _ in 0..1200 {
        if c.get(format!("{}/api/system/health", server.base))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server did not start");
}
