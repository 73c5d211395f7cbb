//! `GET /metrics` against the real binary: who may read it, and that the
//! figures follow what the controller does (requests by face and route
//! template, VMs by state, tasks, hosts, monitor passes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{blank_image_dir, host_body, wait_until, Server, TOKEN};
use serde_json::json;

fn scrape(s: &Server, token: Option<&str>) -> (u16, String) {
    let (status, body) = s.call_as(token, "GET", "/metrics", None);
    (status, body.as_str().unwrap_or_default().to_string())
}

/// The value of the series `name{labels}` (labels as rendered), if present.
fn series(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}

#[test]
fn metrics_follow_the_controller_and_need_the_root_token() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("IRONIDC_TOKEN", TOKEN), ("IRONIDC_MONITOR_SECS", "1")];
    let s = Server::start_with(dir.path(), &env, None);
    let images = blank_image_dir(dir.path());
    s.ok(
        "POST",
        "/api/server/create",
        Some(host_body("h1", &images, "blank.qcow2")),
    );
    s.ok(
        "POST",
        "/api/client/create/h1",
        Some(
            json!({"vm_uuid": "m1", "os_name": "demo", "cpu_num": 1, "mem_num": 128, "hdd_num": 256,
                    "nic_all": {"ethernet0": {"nic_type": "nat"}}}),
        ),
    );
    s.ok("GET", "/api/client/detail/h1/m1", None);
    s.ok("GET", "/api/client/detail/h1/m1", None);

    // Who may read: the root token, not a customer, not an anonymous caller.
    let (status, body) = scrape(&s, None);
    assert_eq!(status, 401, "{body}");
    let customer = s.role_id("Customer");
    s.add_user("watcher", "Scrape-Figures-2026", &[customer]);
    let (access, _) = s.login("watcher", "Scrape-Figures-2026");
    assert_eq!(scrape(&s, Some(&access)).0, 403);

    let (status, text) = scrape(&s, Some(TOKEN));
    assert_eq!(status, 200, "{text}");
    // Requests by face and route template: one series for every VM.
    let detail = r#"ironidc_http_requests_total{face="openidcs",method="GET",route="/api/client/detail/{hs_name}/{vm_uuid}",status="200"}"#;
    assert_eq!(series(&text, detail), Some(2.0), "{text}");
    assert!(
        !text.contains("route=\"/api/client/detail/h1/m1\""),
        "raw paths are not labels"
    );
    assert!(text.contains("ironidc_http_request_duration_seconds_bucket{face=\"openidcs\""));
    assert_eq!(
        series(&text, r#"ironidc_vms{state="stopped"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series(&text, r#"ironidc_host_up{host="h1"}"#),
        Some(1.0),
        "{text}"
    );
    assert!(series(&text, r#"ironidc_tasks{status="succeeded"}"#).unwrap_or(0.0) >= 2.0);
    wait_until(30, "a monitor pass in the figures", || {
        scrape(&s, Some(TOKEN))
            .1
            .contains("ironidc_monitor_pass_seconds_count")
    });
    s.ok("DELETE", "/api/client/delete/h1/m1", None);
    let (_, text) = scrape(&s, Some(TOKEN));
    assert_eq!(
        series(&text, r#"ironidc_vms{state="stopped"}"#),
        None,
        "no stale series: {text}"
    );
}

#[test]
fn a_listed_address_reads_metrics_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("IRONIDC_TOKEN", TOKEN),
        ("IRONIDC_METRICS_ALLOW", "127.0.0.0/8"),
    ];
    let s = Server::start_with(dir.path(), &env, None);
    let (status, text) = scrape(&s, None);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("ironidc_http_requests_total"), "{text}");
}
