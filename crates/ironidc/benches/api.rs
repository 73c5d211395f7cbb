//! `cargo bench -p ironidc --bench api`: figures for the core control plane.
//!
//! - median and p99 latency of the VM list (whole, a page of 100, and cut
//!   to two fields) and VM detail endpoints with 10,000 VMs on one host;
//! - requests per second on the host list with 8 concurrent clients;
//! - idle RSS of `ironidc serve` (fresh, and after the seeding and load);
//! - time to create a VM from a 100 MiB and from a 10 GiB image.
//!
//! It starts the real binary on a temporary data directory. Figures are
//! printed, never asserted: this machine is too noisy for timed assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ironidc_core::model::VmConfig;
use ironidc_store::SqlStore;
use serde_json::{json, Value};
use support::TOKEN;

const SEEDED_VMS: usize = 10_000;

fn call(
    c: &reqwest::blocking::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = c
        .request(method, format!("{base}{path}"))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().unwrap();
    let status = resp.status();
    let v: Value = resp.json().unwrap();
    assert!(status.is_success(), "{path}: {v}");
    v
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = ms(samples[samples.len() / 2]);
    let p99 = ms(samples[((samples.len() as f64) * 0.99).ceil() as usize - 1]);
    (median, p99)
}

fn time_requests(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

/// A 100 MiB image full of data, and a 10 GiB image (sparse but for 100 MiB).
fn make_images(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let raw = dir.join("data.raw");
    let mut bytes = vec![0u8; 100 * 1024 * 1024];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&raw, &bytes).unwrap();
    let small = dir.join("img100m.qcow2");
    let ok = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(&small)
        .status()
        .unwrap();
    assert!(ok.success());
    let big = dir.join("img10g.qcow2");
    std::fs::copy(&small, &big).unwrap();
    let ok = Command::new("qemu-img")
        .args(["resize", "-q", "-f", "qcow2"])
        .arg(&big)
        .arg("10G")
        .status()
        .unwrap();
    assert!(ok.success());
    std::fs::remove_file(raw).unwrap();
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    make_images(&images);
    let server = support::start(dir.path());
    let pid = server.child.id();
    std::thread::sleep(Duration::from_secs(2));
    let idle_fresh = rss_kib(pid);
    let c = support::client(Duration::from_secs(120));
    let base = server.base.clone();
    let host = json!({"name": "bench", "type": "qemu", "config": {
        "images_path": images.to_string_lossy(),
        "system_maps": {"small": ["img100m.qcow2", 0], "big": ["img10g.qcow2", 0]},
        "server_plan": {"cpu_num": 8, "mem_num": 65536, "hdd_num": 1048576}}});
    call(
        &c,
        &base,
        reqwest::Method::POST,
        "/api/server/create",
        Some(host),
    );

    // Create time: the linked clone does not read the base image.
    let create = |os: &str, hdd: u64| -> (f64, f64) {
        let samples = (0..10)
            .map(|i| {
                let name = format!("{os}-{i}");
                let body = json!({"vm_uuid": name, "os_name": os, "cpu_num": 1, "mem_num": 256, "hdd_num": hdd});
                let t = Instant::now();
                call(&c, &base, reqwest::Method::POST, "/api/client/create/bench", Some(body));
                let d = t.elapsed();
                call(&c, &base, reqwest::Method::DELETE, &format!("/api/client/delete/bench/{name}"), None);
                d
            })
            .collect();
        percentiles(samples)
    };
    let small = create("small", 20 * 1024);
    let big = create("big", 20 * 1024);

    // Seed 10,000 VM rows straight into the same SQLite file.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqlStore::connect(&format!("sqlite://{}/ironidc.db", dir.path().display()))
            .await
            .unwrap();
        let host_id = {
            use ironidc_core::store::Store;
            store.host_by_name("bench").await.unwrap().unwrap().id
        };
        let configs: Vec<VmConfig> = (0..SEEDED_VMS)
            .map(|i| VmConfig {
                vm_uuid: format!("seed-{i:05}"),
                os_name: "small".into(),
                cpu_num: 1,
                mem_num: 512,
                hdd_num: 10240,
                ..Default::default()
            })
            .collect();
        store.insert_vms_bulk(host_id, &configs).await.unwrap();
    });

    let list = time_requests(30, || {
        let v = call(
            &c,
            &base,
            reqwest::Method::GET,
            "/api/client/detail/bench",
            None,
        );
        assert_eq!(v["data"].as_object().unwrap().len(), SEEDED_VMS);
    });
    // The same list a page at a time (the 50th page of 100, from the
    // store), and whole but cut to two fields.
    let paged = time_requests(100, || {
        let v = call(
            &c,
            &base,
            reqwest::Method::GET,
            "/api/client/detail/bench?page=50&page_size=100",
            None,
        );
        assert_eq!(v["data"]["total"], SEEDED_VMS as u64);
        assert_eq!(v["data"]["vms"].as_array().unwrap().len(), 100);
    });
    let selected = time_requests(30, || {
        let v = call(
            &c,
            &base,
            reqwest::Method::GET,
            "/api/client/detail/bench?fields=uuid,state",
            None,
        );
        assert_eq!(v["data"].as_object().unwrap().len(), SEEDED_VMS);
    });
    let detail = time_requests(1000, || {
        call(
            &c,
            &base,
            reqwest::Method::GET,
            "/api/client/detail/bench/seed-04242",
            None,
        );
    });

    // Host list throughput with 8 concurrent clients for 5 seconds.
    let run_for = Duration::from_secs(5);
    let total: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let base = base.clone();
                s.spawn(move || {
                    let c = support::client(Duration::from_secs(120));
                    let start = Instant::now();
                    let mut n = 0usize;
                    while start.elapsed() < run_for {
                        call(&c, &base, reqwest::Method::GET, "/api/server/detail", None);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    std::thread::sleep(Duration::from_secs(2));
    let idle_after = rss_kib(pid);

    let (lm, lp) = percentiles(list);
    let (dm, dp) = percentiles(detail);
    let (pm, pp) = percentiles(paged);
    let (sm, sp) = percentiles(selected);
    println!("ironidc core benchmark ({SEEDED_VMS} VMs on one host, SQLite, release build)");
    println!("  VM list   (10,000 VMs, 30 requests):  median {lm:8.2} ms   p99 {lp:8.2} ms");
    println!("  VM list, page of 100 (100 requests):  median {pm:8.2} ms   p99 {pp:8.2} ms");
    println!("  VM list, fields=uuid,state (30):      median {sm:8.2} ms   p99 {sp:8.2} ms");
    println!("  VM detail (1,000 requests):           median {dm:8.3} ms   p99 {dp:8.3} ms");
    println!(
        "  host list, 8 concurrent clients, 5 s: {:.0} requests/s",
        total as f64 / run_for.as_secs_f64()
    );
    println!(
        "  idle RSS of ironidc serve:            {} KiB fresh, {} KiB after seeding and load",
        idle_fresh, idle_after
    );
    println!(
        "  VM create from a 100 MiB image:       median {:.1} ms  p99 {:.1} ms (10 runs)",
        small.0, small.1
    );
    println!(
        "  VM create from a 10 GiB image:        median {:.1} ms  p99 {:.1} ms (10 runs)",
        big.0, big.1
    );
}
