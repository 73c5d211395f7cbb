//! Property-based fuzzing of every request-body parser of the faces,
//! through the real binary: each POST and PUT endpoint of the OpenIDCS face
//! and of the PTPB face (read from the OpenAPI documents generated from
//! their routes) gets generated JSON bodies, hostile and near-valid. Every reply must be
//! the face's envelope with a 2xx/4xx status, never a 500 or a dropped
//! connection, and the controller must stay up.
//!
//! Bounded for CI: `IRONIDC_FUZZ_CASES` (default 40) bodies per endpoint,
//! about 40 endpoints, some seconds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, TOKEN};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

/// Endpoints whose success would end the test's own credential or start
/// guests: the token resets and sets (bounds tested in `hardening.rs`).
const SKIPPED: [&str; 4] = [
    "/api/system/resets",
    "/api/token/reset",
    "/api/system/create",
    "/api/token/set",
];

/// (method, path) of every body-taking endpoint of every face, from the
/// OpenAPI documents generated from the faces' routes.
fn body_endpoints() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for face in ironidc_api::FACES {
        let doc = serde_json::to_value(face.document()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["post", "put", "patch"] {
                if item.get(method).is_some() && !SKIPPED.contains(&path.as_str()) {
                    out.push((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    assert!(out.len() >= 35, "the documents list the endpoints: {out:?}");
    out
}

/// Fill the placeholders with names that exist (the VM is never started:
/// power goes to a VM that does not exist).
fn concrete(path: &str) -> String {
    let vm = if path.contains("/powers/") {
        "ghost"
    } else {
        "vm1"
    };
    path.replace("{hs_name}", "h1")
        .replace("{vm_uuid}", vm)
        .replace("{index}", "0")
        .replace("{name}", "s1")
        .replace("{id}", "1")
}

/// Field names the faces read, so generated objects often hit real fields.
const KEYS: &[&str] = &[
    "name",
    "type",
    "config",
    "vm_uuid",
    "os_name",
    "os_pass",
    "cpu_num",
    "mem_num",
    "hdd_num",
    "nic_all",
    "nic_type",
    "ip4_addr",
    "mac_addr",
    "action",
    "protocol",
    "external_port",
    "internal_port",
    "internal_ip",
    "domain",
    "backend_port",
    "ssl_type",
    "ssl_cert",
    "owner",
    "password",
    "hostname",
    "path",
    "content",
    "command",
    "args",
    "timeout",
    "iso",
    "enable",
    "enable_host",
    "account",
    "status",
    "roles",
    "perms",
    "id",
    "scopes",
    "expires_in_days",
    "refresh",
    "prefix",
    "images_path",
    "ipaddr_maps",
    "reserved_ports",
    "ports_start",
    "server_plan",
    "system_maps",
    "quota",
    "userid",
    "token",
    "version",
    "hosts",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN", |f| f.is_finite())
            .prop_map(Value::from),
        (0u32..70_000).prop_map(|n| Value::String(n.to_string())),
        "\\PC{0,40}".prop_map(Value::String),
        "[a-z0-9_.:/-]{0,20}".prop_map(Value::String),
        prop::sample::select(vec![
            "demo",
            "start",
            "tcp",
            "both",
            "nat",
            "../../etc/passwd",
            "a\u{0}b",
            "h1",
            "vm1",
            "-1",
            "1e309",
            "",
        ])
        .prop_map(|s| Value::String(s.to_string())),
        (1usize..4).prop_map(|k| Value::String("x".repeat(k * 50_000))),
    ]
}

fn body() -> impl Strategy<Value = Value> {
    let leaf = scalar();
    let value = leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(KEYS).prop_map(str::to_string),
                        "\\PC{0,12}"
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    });
    prop_oneof![
        // Mostly objects with known keys: they pass the outer checks.
        prop::collection::vec((prop::sample::select(KEYS), value.clone()), 0..8).prop_map(|kv| {
            Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
        }),
        value,
    ]
}

/// Send one body; the status and the reply.
fn send(s: &Server, method: &str, path: &str, body: &Value, raw: Option<&[u8]>) -> (u16, String) {
    let req = s
        .client
        .request(method.parse().unwrap(), format!("{}{}", s.base, path))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json");
    let req = match raw {
        Some(bytes) => req.body(bytes.to_vec()),
        None => req.body(serde_json::to_vec(body).unwrap()),
    };
    let resp = req
        .send()
        .unwrap_or_else(|e| panic!("{method} {path}: no reply ({e:?}) to {body}"));
    let status = resp.status().as_u16();
    (status, resp.text().unwrap_or_default())
}

#[test]
fn every_request_body_parser_takes_hostile_json() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_blank_host(dir.path());
    s.ok(
        "POST",
        "/api/client/create/h1",
        Some(json!({"vm_uuid": "vm1", "os_name": "demo", "cpu_num": 1, "mem_num": 128, "hdd_num": 64})),
    );
    let cases: u32 = std::env::var("IRONIDC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let endpoints = body_endpoints();
    let check = |method: &str, path: &str, body: &Value, raw: Option<&[u8]>| {
        let (status, text) = send(&s, method, path, body, raw);
        assert!(
            (200..500).contains(&status) || status == 503 || status == 504,
            "{method} {path}: {status} {text} for {body}"
        );
        let reply: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"));
        assert_eq!(reply["code"], status, "{method} {path}: envelope {text}");
    };
    for (method, template) in &endpoints {
        let path = concrete(template);
        // Bodies that are not JSON objects at all.
        for raw in [
            &b"{"[..],
            b"[]",
            b"\"text\"",
            b"\xff\xfe",
            b"{\"a\":1}{",
            b"null",
        ] {
            check(method, &path, &Value::Null, Some(raw));
        }
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&body(), |b| {
                check(method, &path, &b, None);
                Ok(())
            })
            .unwrap();
    }
    s.ok("GET", "/api/system/health", None);
}
