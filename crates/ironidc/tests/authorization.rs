//! Who may do what, through every face, against the real binary:
//!
//! - the authorization matrix: for every endpoint of every face, no token
//!   gets 401, a user without the permission gets 403, and a customer
//!   naming another customer's VM gets 404 (403 when they lack the
//!   permission anyway), and nothing changes through a refused call;
//! - ownership, quotas and the audit trail of customers' calls.
//!
//! Later faces add rows to `ENDPOINTS`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, TOKEN};
use serde_json::{json, Value};

/// What an endpoint asks of its caller.
#[derive(Clone, Copy, Debug)]
enum Need {
    /// No credential at all (login, health).
    Public,
    /// Any authenticated caller (their own things).
    Anyone,
    /// This permission.
    Perm(&'static str),
    /// A credential of its own (a console token, a VM's report secret): a
    /// user token neither replaces it nor is needed; a wrong one is 401
    /// (or 404 for an unknown VM), whoever calls.
    Secret,
}

/// Whether the path names a VM of another customer (`{vm}`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scope {
    Global,
    Vm,
}

struct Endpoint {
    face: &'static str,
    method: &'static str,
    /// `{hs}` is the host, `{vm}` Bob's VM, `{alice}` Alice's user id,
    /// `{role}` a spare role's id.
    path: &'static str,
    body: fn(&Ids) -> Value,
    need: Need,
    scope: Scope,
}

fn empty(_: &Ids) -> Value {
    json!({})
}

macro_rules! ep {
    ($face:literal, $method:literal, $path:literal, $need:expr, $scope:expr) => {
        ep!($face, $method, $path, $need, $scope, empty)
    };
    ($face:literal, $method:literal, $path:literal, $need:expr, $scope:expr, $body:expr) => {
        Endpoint {
            face: $face,
            method: $method,
            path: $path,
            body: $body,
            need: $need,
            scope: $scope,
        }
    };
}

use Need::{Anyone, Perm, Public, Secret};
use Scope::{Global, Vm};

const ENDPOINTS: &[Endpoint] = &[
    // OpenIDCS: system
    ep!("openidcs", "GET", "/api/system/health", Public, Global),
    ep!(
        "openidcs",
        "POST",
        "/api/system/resets",
        Perm("system.token.manage"),
        Global
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/token/reset",
        Perm("system.token.manage"),
        Global
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/system/create",
        Perm("system.token.manage"),
        Global,
        |_| json!({"token": "another-token-0123456789"})
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/token/set",
        Perm("system.token.manage"),
        Global,
        |_| json!({"token": "another-token-0123456789"})
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/system/tquery",
        Perm("system.token.manage"),
        Global
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/token/current",
        Perm("system.token.manage"),
        Global
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/system/saving",
        Perm("system.config.manage"),
        Global
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/system/loader",
        Perm("system.config.manage"),
        Global,
        |_| json!({"version": 1, "hosts": [], "vms": []})
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/system/statis",
        Perm("system.stats.read"),
        Global
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/system/engine",
        Perm("system.stats.read"),
        Global
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/system/logger/detail",
        Anyone,
        Global
    ),
    ep!("openidcs", "GET", "/api/system/logget", Anyone, Global),
    ep!("openidcs", "GET", "/api/system/tasker", Anyone, Global),
    ep!("openidcs", "GET", "/api/system/tasget", Anyone, Global),
    // OpenIDCS: hosts
    ep!(
        "openidcs",
        "GET",
        "/api/server/detail",
        Perm("host.server.read"),
        Global
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/server/detail/{hs}",
        Perm("host.server.read"),
        Global
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/server/create",
        Perm("host.server.create"),
        Global,
        |_| json!({"name": "h9", "type": "qemu"})
    ),
    ep!(
        "openidcs",
        "PUT",
        "/api/server/update/{hs}",
        Perm("host.server.update"),
        Global,
        |_| json!({"config": {}})
    ),
    ep!(
        "openidcs",
        "DELETE",
        "/api/server/delete/{hs}",
        Perm("host.server.delete"),
        Global
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/server/powers/{hs}",
        Perm("host.server.power"),
        Global,
        |_| json!({"enable": false})
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/server/status",
        Perm("system.stats.read"),
        Global
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/server/status/{hs}",
        Perm("host.server.read"),
        Global
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/server/ipaddr/{hs}",
        Perm("host.server.read"),
        Global
    ),
    // OpenIDCS: VMs
    ep!(
        "openidcs",
        "GET",
        "/api/client/detail/{hs}",
        Perm("vm.instance.read"),
        Global
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/client/detail",
        Perm("vm.instance.read"),
        Global
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/client/vmid/{vmid}",
        Perm("vm.instance.read"),
        Vm
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/client/detail/{hs}/{vm}",
        Perm("vm.instance.read"),
        Vm
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/client/create/{hs}",
        Perm("vm.instance.create"),
        Global,
        |_| json!({"vm_uuid": "m9", "os_name": "demo", "cpu_num": 1, "mem_num": 64, "hdd_num": 64})
    ),
    ep!(
        "openidcs",
        "PUT",
        "/api/client/update/{hs}/{vm}",
        Perm("vm.instance.update"),
        Vm,
        |_| json!({"cpu_num": 2})
    ),
    ep!(
        "openidcs",
        "DELETE",
        "/api/client/delete/{hs}/{vm}",
        Perm("vm.instance.delete"),
        Vm
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/client/powers/{hs}/{vm}",
        Perm("vm.power.write"),
        Vm,
        |_| json!({"action": "stop"})
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/client/status/{hs}/{vm}",
        Perm("vm.instance.read"),
        Vm
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/client/scaner/{hs}",
        Perm("host.vm.scan"),
        Global
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/client/owner/{hs}/{vm}",
        Perm("vm.all.manage"),
        Vm,
        |_| json!({"owner": null})
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/client/natget/{hs}/{vm}",
        Perm("vm.nat.read"),
        Vm
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/client/natadd/{hs}/{vm}",
        Perm("vm.nat.write"),
        Vm,
        |_| json!({"external_port": 0, "internal_port": 22})
    ),
    ep!(
        "openidcs",
        "DELETE",
        "/api/client/natdel/{hs}/{vm}/0",
        Perm("vm.nat.write"),
        Vm
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/client/ipaddr/detail/{hs}/{vm}",
        Perm("vm.ipaddr.read"),
        Vm
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/client/ipaddr/create/{hs}/{vm}",
        Perm("vm.ipaddr.write"),
        Vm
    ),
    ep!(
        "openidcs",
        "DELETE",
        "/api/client/ipaddr/delete/{hs}/{vm}/0",
        Perm("vm.ipaddr.write"),
        Vm
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/client/proxys/detail/{hs}/{vm}",
        Perm("vm.proxy.read"),
        Vm
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/client/proxys/create/{hs}/{vm}",
        Perm("vm.proxy.write"),
        Vm,
        |_| json!({"domain": "m.example.com"})
    ),
    ep!(
        "openidcs",
        "DELETE",
        "/api/client/proxys/delete/{hs}/{vm}/0",
        Perm("vm.proxy.write"),
        Vm
    ),
    // OpenIDCS: VM operations (issue 5)
    ep!(
        "openidcs",
        "GET",
        "/api/client/remote/{hs}/{vm}",
        Perm("vm.console.open"),
        Vm
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/client/console/{hs}/{vm}",
        Perm("vm.console.open"),
        Vm
    ),
    ep!(
        "openidcs",
        "DELETE",
        "/api/client/console/{hs}/{vm}",
        Perm("vm.console.open"),
        Vm
    ),
    // The console WebSocket and the upload authenticate with their own
    // secrets (a console token, a VM's report secret), not a user token.
    ep!(
        "openidcs",
        "GET",
        "/api/client/console/ws?token=nope",
        Secret,
        Global
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/client/upload?nic=52:54:00:00:00:99",
        Secret,
        Global,
        |_| json!({"cpu_usage": 1.0})
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/client/monitor/{hs}/{vm}?range=day",
        Perm("vm.instance.read"),
        Vm
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/client/agent/{hs}/{vm}",
        Perm("vm.instance.read"),
        Vm
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/client/interfaces/{hs}/{vm}",
        Perm("vm.instance.read"),
        Vm
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/client/password/{hs}/{vm}",
        Perm("vm.agent.write"),
        Vm,
        |_| json!({"password": "Fresh-Pass-2026"})
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/client/hostname/{hs}/{vm}",
        Perm("vm.agent.write"),
        Vm,
        |_| json!({"hostname": "web1"})
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/client/file/{hs}/{vm}",
        Perm("vm.agent.write"),
        Vm,
        |_| json!({"path": "/tmp/x", "content": "x"})
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/client/exec/{hs}/{vm}",
        Perm("vm.agent.write"),
        Vm,
        |_| json!({"command": "/bin/true"})
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/client/snapshot/{hs}/{vm}",
        Perm("vm.instance.read"),
        Vm
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/client/snapshot/{hs}/{vm}",
        Perm("vm.snapshot.write"),
        Vm,
        |_| json!({"name": "s1"})
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/client/snapshot/{hs}/{vm}/s1/revert",
        Perm("vm.snapshot.write"),
        Vm
    ),
    ep!(
        "openidcs",
        "DELETE",
        "/api/client/snapshot/{hs}/{vm}/s1",
        Perm("vm.snapshot.write"),
        Vm
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/client/backup/{hs}/{vm}",
        Perm("vm.instance.read"),
        Vm
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/client/backup/{hs}/{vm}",
        Perm("vm.backup.write"),
        Vm,
        |_| json!({"name": "b1"})
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/client/backup/{hs}/{vm}/b1/restore",
        Perm("vm.backup.write"),
        Vm
    ),
    ep!(
        "openidcs",
        "DELETE",
        "/api/client/backup/{hs}/{vm}/b1",
        Perm("vm.backup.write"),
        Vm
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/client/reinstall/{hs}/{vm}",
        Perm("vm.reinstall.write"),
        Vm,
        |_| json!({"os_name": "demo"})
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/server/isos/{hs}",
        Perm("vm.instance.read"),
        Global
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/client/iso/{hs}/{vm}",
        Perm("vm.media.write"),
        Vm,
        |_| json!({"iso": "x.iso"})
    ),
    ep!(
        "openidcs",
        "DELETE",
        "/api/client/iso/{hs}/{vm}",
        Perm("vm.media.write"),
        Vm
    ),
    ep!(
        "openidcs",
        "GET",
        "/api/client/nics/{hs}/{vm}",
        Perm("vm.instance.read"),
        Vm
    ),
    ep!(
        "openidcs",
        "POST",
        "/api/client/nics/{hs}/{vm}",
        Perm("vm.nic.write"),
        Vm,
        |_| json!({"nic_type": "nat"})
    ),
    ep!(
        "openidcs",
        "DELETE",
        "/api/client/nics/{hs}/{vm}/nic0",
        Perm("vm.nic.write"),
        Vm
    ),
    ep!("openidcs", "GET", "/api/system/tasker/1", Anyone, Global),
    ep!(
        "openidcs",
        "GET",
        "/api/client/no/such/endpoint",
        Anyone,
        Global
    ),
    ep!("ptpb", "GET", "/api/rbac/no/such/endpoint/", Anyone, Global),
    // PTPB: sessions
    ep!(
        "ptpb",
        "POST",
        "/api/rbac/login/",
        Public,
        Global,
        |_| json!({"account": "administrator", "password": common::ADMIN_PASSWORD})
    ),
    // The refresh token is its own credential: no access token needed.
    ep!("ptpb", "POST", "/api/rbac/refresh/", Public, Global),
    // PTPB: users
    ep!(
        "ptpb",
        "POST",
        "/api/rbac/user/add/",
        Perm("system.user.create"),
        Global,
        |_| json!({"account": "zed", "password": "Letter-z-2026", "name": "Zed"})
    ),
    ep!(
        "ptpb",
        "POST",
        "/api/rbac/user/edit/",
        Perm("system.user.update"),
        Global,
        |i| json!({"id": i.alice, "name": "Mallory"})
    ),
    ep!(
        "ptpb",
        "POST",
        "/api/rbac/user/del/",
        Perm("system.user.delete"),
        Global,
        |i| json!({"id_list": [i.alice]})
    ),
    ep!(
        "ptpb",
        "GET",
        "/api/rbac/user/get/",
        Perm("system.user.read"),
        Global
    ),
    ep!(
        "ptpb",
        "POST",
        "/api/rbac/user/reset_password/",
        Anyone,
        Global,
        |_| json!({"old_password": "not-it", "new_password": "Whatever-2026"})
    ),
    ep!(
        "ptpb",
        "POST",
        "/api/rbac/user/set_password/",
        Perm("system.user.update"),
        Global,
        |i| json!({"id": i.alice, "password": "Taken-over-2026"})
    ),
    ep!("ptpb", "GET", "/api/rbac/user/detail/", Anyone, Global),
    ep!(
        "ptpb",
        "POST",
        "/api/rbac/user/role/",
        Perm("system.user.update"),
        Global,
        |i| json!({"id": i.alice, "roles": []})
    ),
    // PTPB: roles, permissions, menu
    ep!(
        "ptpb",
        "POST",
        "/api/rbac/role/add/",
        Perm("system.role.create"),
        Global,
        |_| json!({"name": "r9", "code": "r9"})
    ),
    ep!(
        "ptpb",
        "POST",
        "/api/rbac/role/edit/",
        Perm("system.role.update"),
        Global,
        |i| json!({"id": i.role, "name": "renamed"})
    ),
    ep!(
        "ptpb",
        "POST",
        "/api/rbac/role/del/",
        Perm("system.role.delete"),
        Global,
        |i| json!({"id_list": [i.role]})
    ),
    ep!(
        "ptpb",
        "GET",
        "/api/rbac/role/get/",
        Perm("system.role.read"),
        Global
    ),
    ep!(
        "ptpb",
        "GET",
        "/api/rbac/role/get/permission/?id={role}",
        Perm("system.role.read"),
        Global
    ),
    ep!(
        "ptpb",
        "POST",
        "/api/rbac/role/edit/permission/",
        Perm("system.role.update"),
        Global,
        |i| json!({"id": i.role, "perms": []})
    ),
    ep!(
        "ptpb",
        "GET",
        "/api/rbac/perm/",
        Perm("system.role.read"),
        Global
    ),
    ep!("ptpb", "GET", "/api/rbac/routes/", Anyone, Global),
    // PTPB (ours): API tokens and quotas
    ep!("ptpb", "GET", "/api/rbac/token/get/", Anyone, Global),
    ep!(
        "ptpb",
        "POST",
        "/api/rbac/token/add/",
        Anyone,
        Global,
        |_| json!({"name": "script"})
    ),
    ep!(
        "ptpb",
        "POST",
        "/api/rbac/token/del/",
        Anyone,
        Global,
        |_| json!({"id": 999999})
    ),
    ep!("ptpb", "GET", "/api/rbac/quota/get/", Anyone, Global),
    ep!(
        "ptpb",
        "GET",
        "/api/rbac/quota/get/?id={alice}",
        Perm("system.user.read"),
        Global
    ),
    // PTPB: audit
    ep!(
        "ptpb",
        "GET",
        "/api/audit/login/get/",
        Perm("audit.login.read"),
        Global
    ),
    ep!(
        "ptpb",
        "GET",
        "/api/audit/login/get/?self=true",
        Anyone,
        Global
    ),
    ep!(
        "ptpb",
        "GET",
        "/api/audit/opera/get/",
        Perm("audit.opera.read"),
        Global
    ),
    ep!(
        "ptpb",
        "GET",
        "/api/audit/opera/get/?self=true&operation=vm",
        Anyone,
        Global
    ),
    // Last: it ends the caller's session.
    ep!("ptpb", "POST", "/api/rbac/logout/", Anyone, Global),
];

/// Every VM permission a customer could be given, except seeing others'.
const CUSTOMER_PERMISSIONS: &[&str] = &[
    "vm.instance.read",
    "vm.instance.create",
    "vm.instance.update",
    "vm.instance.delete",
    "vm.power.write",
    "vm.nat.read",
    "vm.nat.write",
    "vm.ipaddr.read",
    "vm.ipaddr.write",
    "vm.proxy.read",
    "vm.proxy.write",
];

struct Ids {
    alice: i64,
    role: i64,
    /// Bob's VM's numeric id.
    bobvm: i64,
}

fn fill(text: &str, ids: &Ids) -> String {
    text.replace("{hs}", "h1")
        .replace("{vm}", "bobvm")
        .replace("{alice}", &ids.alice.to_string())
        .replace("{role}", &ids.role.to_string())
        .replace("{vmid}", &ids.bobvm.to_string())
}

fn call(s: &Server, ep: &Endpoint, token: Option<&str>, ids: &Ids) -> (u16, Value) {
    let path = fill(ep.path, ids);
    let body = Some((ep.body)(ids));
    match ep.face {
        "ptpb" => s.ptpb(token, ep.method, &path, body),
        _ => s.call_as(token, ep.method, &path, body),
    }
}

/// The face's error envelope carries the status as `code`.
fn assert_envelope(ep: &Endpoint, status: u16, v: &Value) {
    assert_eq!(v["code"], status, "{} {}: {v}", ep.method, ep.path);
}

/// An endpoint with a credential of its own refuses a missing or wrong one.
fn assert_own_secret(ep: &Endpoint, status: u16, v: &Value) {
    assert!(
        status == 401 || status == 404,
        "{} {}: {status} {v}",
        ep.method,
        ep.path
    );
    assert_envelope(ep, status, v);
}

/// Everything observable that a refused call must not have changed.
fn snapshot(s: &Server) -> Value {
    json!({
        "hosts": s.ok("GET", "/api/server/detail", None),
        "vms": s.ok("GET", "/api/client/detail/h1", None),
        "nat": s.ok("GET", "/api/client/natget/h1/bobvm", None),
        // Logins move `login_date`; everything else must stay.
        "users": s.admin_ptpb("GET", "/api/rbac/user/get/?page_size=100", None)["detail"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                let mut u = u.clone();
                u.as_object_mut().unwrap().remove("login_date");
                u
            })
            .collect::<Vec<_>>(),
        "roles": s.admin_ptpb("GET", "/api/rbac/role/get/?all=true", None)["detail"],
        "token": s.ok("GET", "/api/token/current", None),
    })
}

/// Whether a matrix row's path (with its own placeholders or concrete
/// values) is the document's path template.
fn same_route(template: &str, row: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let row = row.split('?').next().unwrap_or(row);
    let r: Vec<&str> = row.split('/').collect();
    t.len() == r.len()
        && t.iter()
            .zip(&r)
            .all(|(t, r)| t == r || (t.starts_with('{') && t.ends_with('}')))
}

/// Every operation of every face in the face table has a row, so a new
/// face or endpoint cannot skip the matrix.
#[test]
fn the_matrix_covers_every_operation_of_every_face() {
    let mut missing = Vec::new();
    for face in ironidc_api::FACES {
        let doc = serde_json::to_value(face.document()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                let covered = ENDPOINTS.iter().any(|ep| {
                    ep.face == face.name.as_str()
                        && ep.method.eq_ignore_ascii_case(method)
                        && same_route(path, ep.path)
                });
                if !covered {
                    missing.push(format!("{} {} {path}", face.name, method.to_uppercase()));
                }
            }
        }
    }
    assert!(missing.is_empty(), "no matrix row for: {missing:#?}");
}

#[test]
fn authorization_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_blank_host(dir.path());
    let customer_role = s.add_role("vmcustomer", CUSTOMER_PERMISSIONS);
    let empty_role = s.add_role("nothing", &[]);
    let spare_role = s.add_role("spare", &[]);
    let alice = s.add_user("alice", "Rabbit-hole-2026", &[customer_role]);
    s.add_user("bob", "Hammer-time-2026", &[customer_role]);
    s.add_user("nobody", "Empty-hands-2026", &[empty_role]);
    let bobvm = s.ok(
        "POST",
        "/api/client/create/h1",
        Some(json!({"vm_uuid": "bobvm", "os_name": "demo", "cpu_num": 1, "mem_num": 64, "hdd_num": 64, "owner": "bob"})),
    )["vm"]["id"]
        .as_i64()
        .unwrap();
    let ids = Ids {
        alice,
        role: spare_role,
        bobvm,
    };
    let before = snapshot(&s);

    // No credential: 401 everywhere but the public endpoints.
    for ep in ENDPOINTS {
        let (status, v) = call(&s, ep, None, &ids);
        match ep.need {
            Public => assert_ne!(status, 401, "{} {}: {v}", ep.method, ep.path),
            Secret => assert_own_secret(ep, status, &v),
            _ => {
                assert_eq!(
                    status, 401,
                    "{} {} without a token: {v}",
                    ep.method, ep.path
                );
                assert_envelope(ep, status, &v);
            }
        }
        let (status, v) = call(&s, ep, Some("eyJhbGciOiJIUzI1NiJ9.e30.forged"), &ids);
        if matches!(ep.need, Secret) {
            assert_own_secret(ep, status, &v);
        } else if !matches!(ep.need, Public) {
            assert_eq!(
                status, 401,
                "{} {} with a forged token: {v}",
                ep.method, ep.path
            );
        }
    }

    // A user holding no permission: 403 wherever one is needed.
    let (nobody, _) = s.login("nobody", "Empty-hands-2026");
    for ep in ENDPOINTS {
        let (status, v) = call(&s, ep, Some(&nobody), &ids);
        match ep.need {
            Perm(code) => {
                assert_eq!(status, 403, "{} {} without {code}: {v}", ep.method, ep.path);
                assert_envelope(ep, status, &v);
            }
            Secret => assert_own_secret(ep, status, &v),
            Anyone | Public => assert!(
                status != 401 && status != 403,
                "{} {} is open to any user: {status} {v}",
                ep.method,
                ep.path
            ),
        }
    }

    // A customer naming another customer's VM: 404, as if it did not
    // exist (403 where they lack the permission anyway).
    let (alice_token, _) = s.login("alice", "Rabbit-hole-2026");
    for ep in ENDPOINTS.iter().filter(|ep| ep.scope == Vm) {
        let (status, v) = call(&s, ep, Some(&alice_token), &ids);
        let expected = match ep.need {
            Perm(code) if !CUSTOMER_PERMISSIONS.contains(&code) => 403,
            _ => 404,
        };
        assert_eq!(
            status, expected,
            "alice on bob's VM: {} {}: {v}",
            ep.method, ep.path
        );
        assert_envelope(ep, status, &v);
        if expected == 404 {
            // As if it did not exist, named as the caller named it.
            let named = if ep.path.contains("{vmid}") {
                format!("vm #{} not found", ids.bobvm)
            } else {
                "bobvm".to_string()
            };
            assert!(
                v.to_string().contains(&named),
                "the 404 names the VM as not found: {v}"
            );
        }
    }
    // Alice's list of the host does not show Bob's VM; Bob's does.
    let (status, v) = s.call_as(Some(&alice_token), "GET", "/api/client/detail/h1", None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"], json!({}), "alice sees no VM: {v}");
    let (bob_token, _) = s.login("bob", "Hammer-time-2026");
    let (status, v) = s.call_as(Some(&bob_token), "GET", "/api/client/detail/h1", None);
    assert_eq!(status, 200, "{v}");
    assert!(v["data"]["bobvm"].is_object(), "bob sees his VM: {v}");
    let (status, v) = s.call_as(Some(&bob_token), "GET", "/api/client/natget/h1/bobvm", None);
    assert_eq!(status, 200, "bob reads his forwards: {v}");

    // None of the refused calls changed anything.
    assert_eq!(snapshot(&s), before);
}

#[test]
fn quotas_ownership_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_blank_host(dir.path());
    let role = s.add_role("buyer", CUSTOMER_PERMISSIONS);
    // The role allows 2 VMs, 3 vCPUs, 5 forwards and no domain; Carol's
    // own limit of no forward wins over the role's 5.
    s.admin_ptpb(
        "POST",
        "/api/rbac/role/edit/",
        Some(json!({"id": role, "quota": {"vms": 2, "vcpus": 3, "nat_rules": 5, "proxies": 0}})),
    );
    let carol = s.add_user("carol", "Christmas-2026", &[role]);
    s.admin_ptpb(
        "POST",
        "/api/rbac/user/edit/",
        Some(json!({"id": carol, "quota": {"nat_rules": 0}})),
    );
    let (token, _) = s.login("carol", "Christmas-2026");
    let create = |uuid: &str, cpus: u32| {
        s.call_as(
            Some(&token),
            "POST",
            "/api/client/create/h1",
            Some(json!({"vm_uuid": uuid, "os_name": "demo", "cpu_num": cpus, "mem_num": 64, "hdd_num": 64})),
        )
    };
    let (status, v) = create("c1", 2);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["data"]["vm"]["owner_id"], carol,
        "a customer's VM is theirs: {v}"
    );
    let (status, v) = create("c2", 2);
    assert_eq!(status, 403, "{v}");
    assert!(v["msg"].as_str().unwrap().contains("quota vcpus"), "{v}");
    let (status, v) = create("c2", 1);
    assert_eq!(status, 200, "{v}");
    let (status, v) = create("c3", 1);
    assert_eq!(status, 403, "{v}");
    assert!(v["msg"].as_str().unwrap().contains("quota vms"), "{v}");
    // Growing a VM counts too.
    let (status, v) = s.call_as(
        Some(&token),
        "PUT",
        "/api/client/update/h1/c2",
        Some(json!({"cpu_num": 2})),
    );
    assert_eq!(status, 403, "{v}");
    assert!(v["msg"].as_str().unwrap().contains("quota vcpus"), "{v}");
    // Forwards and domains: refused by quota before anything is checked.
    let nat = json!({"external_port": 0, "internal_port": 22});
    let (status, v) = s.call_as(Some(&token), "POST", "/api/client/natadd/h1/c1", Some(nat));
    assert_eq!(status, 403, "{v}");
    assert!(
        v["msg"].as_str().unwrap().contains("quota nat_rules"),
        "{v}"
    );
    let proxy = json!({"domain": "c1.example.com"});
    let (status, v) = s.call_as(
        Some(&token),
        "POST",
        "/api/client/proxys/create/h1/c1",
        Some(proxy),
    );
    assert_eq!(status, 403, "{v}");
    assert!(v["msg"].as_str().unwrap().contains("quota proxies"), "{v}");
    // The quota report agrees.
    let (status, v) = s.ptpb(Some(&token), "GET", "/api/rbac/quota/get/", None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["detail"]["limits"],
        json!({"vms": 2, "vcpus": 3, "nat_rules": 0, "proxies": 0})
    );
    assert_eq!(v["detail"]["usage"]["vms"], 2);
    assert_eq!(v["detail"]["usage"]["vcpus"], 3);
    assert_eq!(v["detail"]["usage"]["memory_mb"], 128);

    // Giving a VM away: the receiver's quota counts it; an operator VM
    // given to Carol is refused (she is full), to Dave it is accepted.
    s.ok(
        "POST",
        "/api/client/create/h1",
        Some(json!({"vm_uuid": "op1", "os_name": "demo", "cpu_num": 1, "mem_num": 64, "hdd_num": 64})),
    );
    let (status, v) = s.call(
        "POST",
        "/api/client/owner/h1/op1",
        Some(json!({"owner": "carol"})),
    );
    assert_eq!(status, 403, "{v}");
    let dave = s.add_user("dave", "Diver-deep-2026", &[role]);
    let moved = s.ok(
        "POST",
        "/api/client/owner/h1/op1",
        Some(json!({"owner": "dave"})),
    );
    assert_eq!(moved["owner_id"], dave);
    let (status, v) = s.call(
        "POST",
        "/api/client/owner/h1/op1",
        Some(json!({"owner": "nosuchuser"})),
    );
    assert_eq!(status, 400, "{v}");
    assert!(v["msg"].as_str().unwrap().starts_with("owner:"), "{v}");
    // A user who owns VMs cannot be deleted.
    let (status, v) = s.ptpb(
        Some(TOKEN),
        "POST",
        "/api/rbac/user/del/",
        Some(json!({"id_list": [dave]})),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["detail"]["id_list"][0].as_str().unwrap().contains("owns"),
        "{v}"
    );

    // The audit trail: Carol's calls through both faces, with her user,
    // address and outcome, in the PTPB log and the OpenIDCS logger.
    let (status, v) = s.ptpb(
        Some(&token),
        "GET",
        "/api/audit/opera/get/?self=true&operation=vm.create&desc=true&page_size=100",
        None,
    );
    assert_eq!(status, 200, "{v}");
    let rows = v["detail"].as_array().unwrap();
    assert_eq!(v["total"], 4, "two made, two refused: {v}");
    assert!(
        rows.iter()
            .all(|r| r["user"]["id"] == carol && r["ip"] == "127.0.0.1"),
        "{v}"
    );
    assert_eq!(
        rows.iter().filter(|r| r["status"] == true).count(),
        2,
        "{v}"
    );
    assert!(rows
        .iter()
        .any(|r| r["status"] == false && r["message"].as_str().unwrap().contains("quota")));
    assert_eq!(rows[0]["face"], "openidcs");
    // Paging: page_size 1 gives one row and the same total.
    let (_, v) = s.ptpb(
        Some(&token),
        "GET",
        "/api/audit/opera/get/?self=true&operation=vm.create&page_size=1",
        None,
    );
    assert_eq!(v["detail"].as_array().unwrap().len(), 1);
    assert_eq!(v["total"], 4);
    let (status, v) = s.ptpb(
        Some(&token),
        "GET",
        "/api/audit/opera/get/?page_size=0",
        None,
    );
    assert_eq!(status, 400, "{v}");
    assert!(v["detail"]["page_size"].is_array(), "{v}");
    // The admin sees PTPB-face operations too (user management), by face.
    let v = s.admin_ptpb(
        "GET",
        "/api/audit/opera/get/?operation=user.create&page_size=100",
        None,
    );
    assert!(
        v["detail"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["face"] == "ptpb"),
        "{v}"
    );
    assert_eq!(v["total"], 2, "{v}");
    // OpenIDCS logger: Carol sees only her own rows; the root token all.
    let (status, v) = s.call_as(Some(&token), "GET", "/api/system/logger/detail", None);
    assert_eq!(status, 200, "{v}");
    let mine = v["data"].as_array().unwrap();
    assert!(
        !mine.is_empty() && mine.iter().all(|r| r["actor"] == "carol"),
        "{v}"
    );
    let all = s.ok("GET", "/api/system/logger/detail?limit=1000", None);
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["actor"] == "admin"));
    // Tasks: Carol sees hers only.
    let (_, v) = s.call_as(Some(&token), "GET", "/api/system/tasker", None);
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["actor"] == "carol"),
        "{v}"
    );
}
