//! `cargo bench -p ironidc --bench auth`: what authentication costs a request.
//!
//! The unauthenticated health endpoint is set side by side with the PTPB
//! route menu (`GET /api/rbac/routes/`, a cheap body filtered by the
//! caller's permissions) called with each kind of credential: the
//! administrator's JWT, a customer's JWT, a customer's personal API token
//! and the root token. Each is measured twice:
//!
//! - sequentially, one request at a time over one keep-alive connection
//!   (median, p99, requests/s);
//! - under load with `wrk` (32 connections, 2 threads, 5 s), when installed.
//!
//! It starts the real binary on a temporary data directory. Figures are
//! printed, never asserted: this machine is too noisy for timed assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{ADMIN_PASSWORD, TOKEN};

const CUSTOMER: &str = "benchcust";
const CUSTOMER_PASSWORD: &str = "Bench-Cust-2026";
const HEALTH: &str = "/api/system/health";
const ROUTES: &str = "/api/rbac/routes/";
const WARMUP: usize = 200;
const REQUESTS: usize = 3000;
const WRK_CONNECTIONS: u32 = 32;
const WRK_THREADS: u32 = 2;
const WRK_SECS: u32 = 5;

/// A PTPB call that must succeed; returns the body.
fn ptpb(
    c: &reqwest::blocking::Client,
    base: &str,
    auth: Option<&str>,
    path: &str,
    body: Value,
) -> Value {
    let mut req = c.post(format!("{base}{path}")).json(&body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().unwrap();
    let status = resp.status();
    let v: Value = resp.json().unwrap();
    assert!(status.is_success() && v["code"] == 200, "{path}: {v}");
    v
}

fn login(c: &reqwest::blocking::Client, base: &str, account: &str, password: &str) -> String {
    let v = ptpb(
        c,
        base,
        None,
        "/api/rbac/login/",
        json!({"account": account, "password": password}),
    );
    v["token"]["access"].as_str().unwrap().to_string()
}

/// One measured case: a path and the `Authorization` header it is sent with.
struct Case {
    label: &'static str,
    path: &'static str,
    auth: Option<String>,
}

#[derive(Clone, Copy)]
struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

/// N sequential requests over one keep-alive connection.
fn sequential(c: &reqwest::blocking::Client, base: &str, case: &Case) -> Figures {
    let url = format!("{base}{}", case.path);
    let once = || {
        let mut req = c.get(&url);
        if let Some(a) = &case.auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().unwrap();
        let status = resp.status();
        let body = resp.bytes().unwrap();
        (status, body)
    };
    let (status, body) = once();
    assert!(
        status.is_success(),
        "{}: {status} {}",
        case.label,
        String::from_utf8_lossy(&body)
    );
    for _ in 0..WARMUP {
        once();
    }
    let started = Instant::now();
    let mut samples: Vec<Duration> = (0..REQUESTS)
        .map(|_| {
            let t = Instant::now();
            let (status, _) = once();
            let d = t.elapsed();
            assert!(status.is_success(), "{}: {status}", case.label);
            d
        })
        .collect();
    let total = started.elapsed();
    samples.sort();
    Figures {
        rps: REQUESTS as f64 / total.as_secs_f64(),
        p50_ms: percentile(&samples, 0.50),
        p99_ms: percentile(&samples, 0.99),
    }
}

fn wrk_available() -> bool {
    Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// `12.34us`, `1.20ms` or `2.00s` in milliseconds.
fn wrk_ms(text: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (text, 1.0)
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

/// `wrk --latency` on one case; the figures plus a count of failed
/// (non-2xx/3xx or socket) responses.
fn wrk(base: &str, case: &Case) -> Option<(Figures, u64)> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "--latency",
        &format!("-t{WRK_THREADS}"),
        &format!("-c{WRK_CONNECTIONS}"),
        &format!("-d{WRK_SECS}s"),
    ]);
    if let Some(a) = &case.auth {
        cmd.arg("-H").arg(format!("Authorization: {a}"));
    }
    let out = cmd
        .arg(format!("{base}{}", case.path))
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut failed = 0u64;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v, ..] => rps = v.parse::<f64>().ok(),
            ["50%", v, ..] => p50 = wrk_ms(v),
            ["99%", v, ..] => p99 = wrk_ms(v),
            ["Non-2xx", "or", "3xx", "responses:", v, ..] => {
                failed += v.parse::<u64>().unwrap_or(0);
            }
            ["Socket", "errors:", rest @ ..] => {
                failed += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    match (rps, p50, p99) {
        (Some(rps), Some(p50_ms), Some(p99_ms)) => Some((
            Figures {
                rps,
                p50_ms,
                p99_ms,
            },
            failed,
        )),
        _ => {
            eprintln!("could not parse wrk output for {}:\n{text}", case.label);
            None
        }
    }
}

fn table(title: &str, cases: &[Case], rows: &[Option<Figures>], note: &[String]) {
    println!();
    println!("{title}");
    println!(
        "  {:<28} {:>10} {:>9} {:>9} {:>10} {:>10}",
        "case", "req/s", "p50 ms", "p99 ms", "+p50 ms", "+p99 ms"
    );
    let health = rows[0];
    for ((case, row), note) in cases.iter().zip(rows).zip(note) {
        match (row, health) {
            (Some(f), Some(h)) => println!(
                "  {:<28} {:>10.0} {:>9.3} {:>9.3} {:>+10.3} {:>+10.3}{note}",
                case.label,
                f.rps,
                f.p50_ms,
                f.p99_ms,
                f.p50_ms - h.p50_ms,
                f.p99_ms - h.p99_ms
            ),
            (Some(f), None) => println!(
                "  {:<28} {:>10.0} {:>9.3} {:>9.3} {:>10} {:>10}{note}",
                case.label, f.rps, f.p50_ms, f.p99_ms, "-", "-"
            ),
            (None, _) => println!("  {:<28} (no figures){note}", case.label),
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = support::start(dir.path());
    let base = server.base.clone();
    let c = support::client(Duration::from_secs(30));

    // Credentials: the administrator's JWT, a customer with its JWT and a
    // personal API token, and the root token.
    let admin_jwt = login(&c, &base, "administrator", ADMIN_PASSWORD);
    ptpb(
        &c,
        &base,
        Some(&format!("Bearer {TOKEN}")),
        "/api/rbac/user/add/",
        json!({"account": CUSTOMER, "password": CUSTOMER_PASSWORD, "name": "c", "status": true}),
    );
    let customer_jwt = login(&c, &base, CUSTOMER, CUSTOMER_PASSWORD);
    let created = ptpb(
        &c,
        &base,
        Some(&format!("Bearer {customer_jwt}")),
        "/api/rbac/token/add/",
        json!({"name": "bench"}),
    );
    let api_token = created["detail"]["token"].as_str().unwrap().to_string();
    assert!(api_token.starts_with("ixt_"), "{created}");

    let cases = [
        Case {
            label: "health (no auth)",
            path: HEALTH,
            auth: None,
        },
        Case {
            label: "routes, administrator JWT",
            path: ROUTES,
            auth: Some(format!("Bearer {admin_jwt}")),
        },
        Case {
            label: "routes, customer JWT",
            path: ROUTES,
            auth: Some(format!("Bearer {customer_jwt}")),
        },
        Case {
            label: "routes, customer API token",
            path: ROUTES,
            auth: Some(format!("Bearer {api_token}")),
        },
        Case {
            label: "routes, root token",
            path: ROUTES,
            auth: Some(format!("Bearer {TOKEN}")),
        },
    ];

    let seq: Vec<Option<Figures>> = cases
        .iter()
        .map(|case| Some(sequential(&c, &base, case)))
        .collect();

    let wrk_rows: Option<Vec<(Option<Figures>, String)>> = wrk_available().then(|| {
        cases
            .iter()
            .map(|case| match wrk(&base, case) {
                Some((f, 0)) => (Some(f), String::new()),
                Some((f, failed)) => (Some(f), format!("  ({failed} failed responses)")),
                None => (None, String::new()),
            })
            .collect()
    });

    println!("ironidc authentication overhead (SQLite, release build, loopback)");
    println!("  health = GET {HEALTH}; routes = GET {ROUTES}");
    table(
        &format!(
            "sequential, one keep-alive connection ({REQUESTS} requests after {WARMUP} warm-up)"
        ),
        &cases,
        &seq,
        &vec![String::new(); cases.len()],
    );
    match wrk_rows {
        Some(rows) => {
            let (figs, notes): (Vec<_>, Vec<_>) = rows.into_iter().unzip();
            table(
                &format!(
                    "wrk, {WRK_CONNECTIONS} connections, {WRK_THREADS} threads, {WRK_SECS} s each"
                ),
                &cases,
                &figs,
                &notes,
            );
        }
        None => {
            println!();
            println!("wrk: SKIPPED (not installed; apt-get install wrk)");
        }
    }
}
