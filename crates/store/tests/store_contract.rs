//! One contract run against both backends: SQLite (always) and PostgreSQL
//! (from `IRONIDC_TEST_POSTGRES_URL`; required when `CI` is set).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ironidc_core::accounts::{
    LogFilter, NewApiToken, NewLoginLog, NewRole, NewUser, Page, Quota, Session, Usage, UserFilter,
    UserKey,
};
use ironidc_core::engine::PowerState;
use ironidc_core::model::{
    HostConfig, HwStatus, NatRule, NicConfig, ProxyBinding, TaskStatus, VmAddress, VmConfig,
};
use ironidc_core::store::{
    AccountStore, ClusterStore, Invalidation, Lease, LockoutRule, LoginFailures, NewBusyMark,
    NewConsoleToken, NewHost, NewLog, NewVm, OpsStore, Scope, Store, StoreError, VmFilter,
};
use ironidc_store::SqlStore;

async fn contract(store: &SqlStore, tag: &str) {
    let host_name = format!("h-{tag}");
    let config = HostConfig {
        server_pass: Some("enc:v1:xyz".into()),
        ports_start: 10000,
        ..Default::default()
    };
    let host = store
        .insert_host(NewHost {
            name: &host_name,
            engine: "qemu",
            enabled: true,
            config: &config,
        })
        .await
        .expect("insert host");
    assert_eq!(host.config.ports_start, 10000);
    let dup = store
        .insert_host(NewHost {
            name: &host_name,
            engine: "qemu",
            enabled: true,
            config: &config,
        })
        .await;
    assert!(
        matches!(dup, Err(StoreError::Conflict(_))),
        "duplicate host must conflict: {dup:?}"
    );

    let vm_name = format!("vm-{tag}");
    let vm_config = VmConfig {
        vm_uuid: vm_name.clone(),
        cpu_num: 2,
        mem_num: 512,
        hdd_num: 1024,
        ..Default::default()
    };
    let vm = store
        .insert_vm(NewVm {
            host_id: host.id,
            uuid: &vm_name,
            config: &vm_config,
            state: PowerState::Stopped,
            os_pass_sealed: Some("enc:v1:p"),
            owner_id: None,
        })
        .await
        .expect("insert vm");
    assert_eq!(vm.hs_name, host_name);
    assert_eq!(vm.config.cpu_num, 2);
    assert_eq!(vm.os_pass_sealed.as_deref(), Some("enc:v1:p"));
    assert_eq!(vm.owner_id, None);
    let dup = store
        .insert_vm(NewVm {
            host_id: host.id,
            uuid: &vm_name,
            config: &vm_config,
            state: PowerState::Stopped,
            os_pass_sealed: None,
            owner_id: None,
        })
        .await;
    assert!(
        matches!(dup, Err(StoreError::Conflict(_))),
        "duplicate vm must conflict"
    );

    store
        .set_vm_state(vm.id, PowerState::Running, true)
        .await
        .expect("state");
    let (total, running) = store.vm_counts().await.expect("counts");
    assert!(total >= 1 && running >= 1);
    let status = HwStatus {
        cpu_usage: 12.5,
        mem_total: 512,
        on_update: 1,
        ..Default::default()
    };
    store
        .record_vm_status(vm.id, PowerState::Running, &status)
        .await
        .expect("record");
    let again = store
        .vm_by_uuid(host.id, &vm_name)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(again.state, PowerState::Running);
    assert!(again.pending_restart);
    assert_eq!(again.last_status.as_ref().map(|s| s.cpu_usage), Some(12.5));
    let history = store
        .vm_history(vm.id, 0, i64::MAX, 10)
        .await
        .expect("history");
    assert_eq!(history.len(), 1);
    let ts = history[0].ts;
    assert!(store
        .vm_history(vm.id, ts + 1, i64::MAX, 10)
        .await
        .expect("after")
        .is_empty());
    assert!(store
        .vm_history(vm.id, 0, ts - 1, 10)
        .await
        .expect("before")
        .is_empty());
    ops_contract(store, vm.id).await;
    vm_pages_contract(store, tag).await;

    let hosts = store.list_hosts().await.expect("hosts");
    let mine = hosts
        .iter()
        .find(|h| h.host.name == host_name)
        .expect("listed");
    assert_eq!(mine.vm_count, 1);

    let t1 = store
        .create_task("vm.create", Some(&host_name), Some(&vm_name), "admin")
        .await
        .expect("task");
    store
        .update_task(t1.id, "cloning", 40)
        .await
        .expect("update");
    // A later step reporting less keeps the progress reached.
    store
        .update_task(t1.id, "resizing", 10)
        .await
        .expect("update");
    let running = store.running_tasks().await.expect("running");
    let t1_now = running.iter().find(|t| t.id == t1.id).expect("t1 runs");
    assert_eq!((t1_now.step.as_str(), t1_now.progress), ("resizing", 40));
    let t2 = store
        .create_task("vm.power.start", Some(&host_name), Some(&vm_name), "admin")
        .await
        .expect("task");
    store
        .finish_task(
            t1.id,
            TaskStatus::Succeeded,
            Some(&serde_json::json!({"ok": 1})),
            None,
        )
        .await
        .expect("finish");
    // Only t2 still runs (the database may be shared with other tests:
    // look for this test's tasks only).
    let running: Vec<i64> = store
        .running_tasks()
        .await
        .expect("running tasks")
        .into_iter()
        .filter(|t| t.id == t1.id || t.id == t2.id)
        .map(|t| t.id)
        .collect();
    assert_eq!(running, vec![t2.id]);
    let failed = store
        .fail_running_tasks("interrupted")
        .await
        .expect("fail running");
    assert!(failed >= 1);
    let tasks = store
        .list_tasks(Some(&host_name), None, 10)
        .await
        .expect("tasks");
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0].id, t2.id, "newest first");
    assert_eq!(tasks[0].status, TaskStatus::Failed);
    assert_eq!(tasks[1].status, TaskStatus::Succeeded);
    assert_eq!(tasks[1].progress, 100);
    assert_eq!(tasks[1].result, Some(serde_json::json!({"ok": 1})));
    assert_eq!(
        store
            .list_tasks(Some(&host_name), None, 1)
            .await
            .expect("limit")
            .len(),
        1
    );

    for ok in [true, false] {
        store
            .insert_log(NewLog {
                actor: "admin",
                user_id: None,
                source_ip: "127.0.0.1",
                face: "openidcs",
                action: "vm.create",
                hs_name: Some(&host_name),
                target: Some(&vm_name),
                ok,
                message: "m",
            })
            .await
            .expect("log");
    }
    let all = store.list_tasks(None, None, 1000).await.expect("all tasks");
    assert!(all.iter().any(|t| t.id == t2.id) && all.windows(2).all(|w| w[0].id > w[1].id));
    let (logs, total) = store
        .list_logs(&LogFilter {
            hs_name: Some(host_name.clone()),
            desc: true,
            ..Default::default()
        })
        .await
        .expect("logs");
    assert_eq!((logs.len(), total), (2, 2));
    assert!(!logs[0].ok && logs[1].ok, "newest first");
    assert_eq!(logs[0].user_id, None);
    let (_, total) = store
        .list_logs(&LogFilter::default())
        .await
        .expect("all logs");
    assert!(total >= 2);

    store.set_setting("k", "v1").await.expect("set");
    store.set_setting("k", "v2").await.expect("overwrite");
    assert_eq!(
        store.get_setting("k").await.expect("get").as_deref(),
        Some("v2")
    );

    let task = store
        .task_by_id(t1.id)
        .await
        .expect("task by id")
        .expect("found");
    assert_eq!((task.id, task.status), (t1.id, TaskStatus::Succeeded));
    assert!(store.task_by_id(-1).await.expect("none").is_none());

    let vm_id = network_contract(store, host.id, &vm_name, tag).await;
    accounts_contract(store, host.id, &host_name, tag).await;

    store.delete_vm(vm_id).await.expect("delete vm");
    assert!(store
        .vm_by_uuid(host.id, &vm_name)
        .await
        .expect("get")
        .is_none());
    store.delete_host(host.id).await.expect("delete host");
    assert!(store.host_by_name(&host_name).await.expect("get").is_none());
}

/// Console tokens (one-time open, touch, revoke per user or all, purge),
/// the report secret, lookups by id, and status retention.
/// VM pages by host, host counts, and the MAC index probe, on a host of
/// their own (the PostgreSQL database is shared by runs).
async fn vm_pages_contract(store: &SqlStore, tag: &str) {
    let config = HostConfig::default();
    let mut hosts = Vec::new();
    for name in [format!("pa-{tag}"), format!("pb-{tag}")] {
        let host = store
            .insert_host(NewHost {
                name: &name,
                engine: "qemu",
                enabled: true,
                config: &config,
            })
            .await
            .expect("insert host");
        hosts.push(host);
    }
    let (a, b) = (&hosts[0], &hosts[1]);
    let mut uuids = Vec::new();
    for i in 0..5 {
        let host = if i == 2 { b } else { a };
        let uuid = format!("page-{tag}-{i}");
        let mac = mac_for(a.id, i);
        let mut config = VmConfig {
            vm_uuid: uuid.clone(),
            ..Default::default()
        };
        config.nic_all.insert(
            "nic0".into(),
            NicConfig {
                mac_addr: mac,
                ..Default::default()
            },
        );
        store
            .insert_vm(NewVm {
                host_id: host.id,
                uuid: &uuid,
                config: &config,
                state: PowerState::Stopped,
                os_pass_sealed: None,
                owner_id: None,
            })
            .await
            .expect("insert vm");
        if host.id == a.id {
            uuids.push(uuid);
        }
    }
    let on_a = VmFilter {
        host_id: Some(a.id),
        owner_id: None,
    };
    assert_eq!(store.count_vms(on_a).await.unwrap(), 4);
    let (first, total) = store.vm_page(on_a, page(0, 3)).await.unwrap();
    assert_eq!(total, 4);
    let names: Vec<&str> = first.iter().map(|v| v.uuid.as_str()).collect();
    assert_eq!(
        names,
        uuids[..3].iter().map(String::as_str).collect::<Vec<_>>()
    );
    let (rest, total) = store.vm_page(on_a, page(3, 3)).await.unwrap();
    assert_eq!(
        (rest.len(), total, rest[0].uuid.as_str()),
        (1, 4, uuids[3].as_str())
    );
    assert_eq!(rest[0].hs_name, a.name);
    let (past, total) = store.vm_page(on_a, page(10, 3)).await.unwrap();
    assert_eq!((past.len(), total), (0, 4));
    let nobody = VmFilter {
        host_id: Some(a.id),
        owner_id: Some(i64::MAX),
    };
    assert_eq!(store.vm_page(nobody, page(0, 3)).await.unwrap().1, 0);

    let listed = store.list_hosts().await.unwrap();
    let count_of = |id: i64| listed.iter().find(|h| h.host.id == id).map(|h| h.vm_count);
    assert_eq!((count_of(a.id), count_of(b.id)), (Some(4), Some(1)));
    // The counts follow deletes too (they are kept, not counted).
    store.delete_vm(rest[0].id).await.unwrap();
    let listed = store.list_hosts().await.unwrap();
    let count_of = |id: i64| listed.iter().find(|h| h.host.id == id).map(|h| h.vm_count);
    assert_eq!((count_of(a.id), count_of(b.id)), (Some(3), Some(1)));
    assert_eq!(store.count_vms(on_a).await.unwrap(), 3);

    assert!(store.mac_in_use(&mac_for(a.id, 0)).await.unwrap());
    assert!(
        !store.mac_in_use(&mac_for(a.id, 4)).await.unwrap(),
        "deleted"
    );
    assert!(!store.mac_in_use(&mac_for(a.id, 9)).await.unwrap());
}

/// A MAC no other run's rows hold: from the (unique) host id.
fn mac_for(host_id: i64, i: u8) -> String {
    let id = host_id.to_be_bytes();
    format!("52:54:{:02x}:{:02x}:{:02x}:{i:02x}", id[5], id[6], id[7])
}

async fn ops_contract(store: &SqlStore, vm_id: i64) {
    let by_id = store
        .vm_by_id(vm_id)
        .await
        .expect("vm by id")
        .expect("found");
    assert_eq!(by_id.id, vm_id);
    assert!(store
        .all_vms()
        .await
        .expect("all")
        .iter()
        .any(|v| v.id == vm_id));
    assert!(store.vm_by_id(-1).await.expect("none").is_none());

    let hash = format!("hash-{vm_id}-{}", std::process::id());
    let token = store
        .insert_console_token(&NewConsoleToken {
            token_hash: hash.clone(),
            vm_id,
            user_id: Some(7),
            actor: "alice".into(),
        })
        .await
        .expect("insert token");
    assert!(token.opened_at.is_none() && !token.revoked);
    let dup = store
        .insert_console_token(&NewConsoleToken {
            token_hash: hash.clone(),
            vm_id,
            user_id: None,
            actor: "root".into(),
        })
        .await;
    assert!(dup.is_err(), "token hashes are unique");
    assert!(store.open_console_token(token.id, 100).await.expect("open"));
    assert!(
        !store
            .open_console_token(token.id, 101)
            .await
            .expect("open again"),
        "a token opens one session only"
    );
    store
        .touch_console_token(token.id, 200)
        .await
        .expect("touch");
    let got = store
        .console_token_by_hash(&hash)
        .await
        .expect("get")
        .expect("found");
    assert_eq!((got.opened_at, got.last_used_at), (Some(100), 200));
    let other = store
        .insert_console_token(&NewConsoleToken {
            token_hash: format!("{hash}-root"),
            vm_id,
            user_id: None,
            actor: "root".into(),
        })
        .await
        .expect("second");
    assert_eq!(
        store
            .revoke_console_tokens(vm_id, Some(7))
            .await
            .expect("revoke own"),
        1
    );
    let listed = store.console_tokens(vm_id).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, other.id, "newest first");
    assert!(!listed[0].revoked && listed[1].revoked);
    assert_eq!(
        store
            .revoke_console_tokens(vm_id, None)
            .await
            .expect("revoke all"),
        1
    );
    assert!(!store
        .open_console_token(other.id, 300)
        .await
        .expect("revoked"));
    assert_eq!(
        store.purge_console_tokens(250).await.expect("purge"),
        1,
        "the one last used at 200"
    );

    assert_eq!(store.vm_report_secret(vm_id).await.expect("secret"), None);
    store
        .set_vm_report_secret(vm_id, "enc:v1:s")
        .await
        .expect("set secret");
    assert_eq!(
        store
            .vm_report_secret(vm_id)
            .await
            .expect("secret")
            .as_deref(),
        Some("enc:v1:s")
    );

    let before = store
        .vm_history(vm_id, 0, i64::MAX, 100)
        .await
        .expect("history")
        .len();
    assert!(before >= 1);
    assert_eq!(store.purge_vm_status(0).await.expect("purge none"), 0);
    assert!(store.purge_vm_status(i64::MAX).await.expect("purge all") >= before as u64);
    assert!(store
        .vm_history(vm_id, 0, i64::MAX, 100)
        .await
        .expect("history")
        .is_empty());
}

/// Addresses, NAT rules, proxy bindings and the MAC index of one VM; all of
/// them go when the VM goes.
/// Returns the id of the VM, which it deletes and inserts again.
async fn network_contract(store: &SqlStore, host_id: i64, vm_name: &str, tag: &str) -> i64 {
    let vm = store.vm_by_uuid(host_id, vm_name).await.unwrap().unwrap();
    // The MAC index follows the VM's NICs, and a MAC belongs to one VM.
    let mac = format!("52:54:00:{:02x}:00:01", std::process::id() % 256);
    let mut config = vm.config.clone();
    config.nic_all.insert(
        "nic0".into(),
        NicConfig {
            nic_type: "nat".into(),
            mac_addr: mac.clone(),
            ..Default::default()
        },
    );
    store.update_vm_config(vm.id, &config, false).await.unwrap();
    assert_eq!(store.vm_by_mac(&mac).await.unwrap().unwrap().id, vm.id);
    let other_name = format!("other-{tag}");
    let clash = store
        .insert_vm(NewVm {
            host_id,
            uuid: &other_name,
            config: &VmConfig {
                vm_uuid: other_name.clone(),
                ..config.clone()
            },
            state: PowerState::Stopped,
            os_pass_sealed: None,
            owner_id: None,
        })
        .await;
    assert!(
        matches!(&clash, Err(StoreError::Conflict(c)) if c.table == "vm_nics" && c.value.as_deref() == Some(mac.as_str())),
        "{clash:?}"
    );
    assert!(
        store
            .vm_by_uuid(host_id, &other_name)
            .await
            .unwrap()
            .is_none(),
        "a refused VM left a row"
    );

    let address = VmAddress {
        id: 0,
        host_id,
        vm_id: vm.id,
        nic: "nic0".into(),
        vers: "ipv4".into(),
        address: format!("10.{}.0.10", std::process::id() % 250),
        prefix: 24,
        gateway: "10.0.0.1".into(),
        pool: "lan".into(),
        description: "primary".into(),
        created_at: 0,
    };
    let a = store.insert_address(&address).await.unwrap();
    assert_eq!((a.prefix, a.description.as_str()), (24, "primary"));
    assert!(matches!(
        store.insert_address(&address).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.addresses(Scope::Vm(vm.id)).await.unwrap().len(), 1);
    assert_eq!(
        store.addresses(Scope::Host(host_id)).await.unwrap().len(),
        1
    );
    assert!(!store.addresses(Scope::All).await.unwrap().is_empty());

    let rule = NatRule {
        id: 0,
        host_id,
        vm_id: vm.id,
        protocol: "both".into(),
        external_port: 65000,
        internal_ip: a.address.clone(),
        internal_port: 22,
        description: "ssh".into(),
        created_at: 0,
    };
    let r = store.insert_nat_rule(&rule).await.unwrap();
    assert_eq!((r.external_port, r.internal_port), (65000, 22));
    assert_eq!(
        store.nat_rules(Scope::Vm(vm.id)).await.unwrap(),
        vec![r.clone()]
    );

    let binding = ProxyBinding {
        id: 0,
        host_id,
        vm_id: vm.id,
        domain: format!("{tag}.example.test"),
        backend_ip: a.address.clone(),
        backend_port: 8080,
        ssl_enabled: true,
        ssl_type: "letsencrypt".into(),
        cert_pem: None,
        key_sealed: None,
        cert_not_after: None,
        cert_error: None,
        description: String::new(),
        created_at: 0,
    };
    let p = store.insert_proxy(&binding).await.unwrap();
    assert!(
        matches!(
            store.insert_proxy(&binding).await,
            Err(StoreError::Conflict(_))
        ),
        "one domain, one binding"
    );
    store
        .set_proxy_certificate(
            p.id,
            Some("CERT"),
            Some("enc:v1:k"),
            Some(1_900_000_000),
            None,
        )
        .await
        .unwrap();
    let p = store.proxies(Scope::Vm(vm.id)).await.unwrap().remove(0);
    assert_eq!(p.cert_pem.as_deref(), Some("CERT"));
    assert_eq!(p.cert_not_after, Some(1_900_000_000));
    assert!(p.ssl_enabled);
    // A failed renewal records why and keeps the certificate serving.
    store
        .set_proxy_error(p.id, "acme: order refused")
        .await
        .unwrap();
    let p = store.proxies(Scope::Vm(vm.id)).await.unwrap().remove(0);
    assert_eq!(p.cert_error.as_deref(), Some("acme: order refused"));
    assert_eq!(p.cert_pem.as_deref(), Some("CERT"));

    store.delete_nat_rule(r.id).await.unwrap();
    assert!(store.nat_rules(Scope::Vm(vm.id)).await.unwrap().is_empty());
    store.insert_nat_rule(&rule).await.unwrap();
    store.delete_vm(vm.id).await.unwrap();
    assert!(store.addresses(Scope::Vm(vm.id)).await.unwrap().is_empty());
    assert!(store.nat_rules(Scope::Vm(vm.id)).await.unwrap().is_empty());
    assert!(store.proxies(Scope::Vm(vm.id)).await.unwrap().is_empty());
    assert!(store.vm_by_mac(&mac).await.unwrap().is_none());
    // Put the VM back for the rest of the contract.
    store
        .insert_vm(NewVm {
            host_id,
            uuid: vm_name,
            config: &vm.config,
            state: PowerState::Stopped,
            os_pass_sealed: None,
            owner_id: None,
        })
        .await
        .unwrap()
        .id
}

fn conflict_column(result: Result<impl std::fmt::Debug, StoreError>) -> String {
    match result {
        Err(StoreError::Conflict(c)) => c.column.to_string(),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn page(offset: u32, limit: u32) -> Page {
    Page { offset, limit }
}

/// Users, roles, sessions, API tokens, login and operation logs, task
/// actors, VM ownership and usage.
async fn accounts_contract(store: &SqlStore, host_id: i64, host_name: &str, tag: &str) {
    // Rows persist in PostgreSQL between runs: every name carries this run.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let t = format!("{tag}x{nanos}");
    let upper = t.to_uppercase();

    // Roles and their permissions.
    let admin_role = store
        .insert_role(&NewRole {
            name: format!("admins-{t}"),
            code: format!("admin_{t}"),
            description: Some("all".into()),
            enabled: true,
            protected: true,
            permissions: vec!["vm.write".into(), "vm.read".into(), "vm.read".into()],
            quota: Quota {
                vms: Some(10),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    assert_eq!(admin_role.permissions, vec!["vm.read", "vm.write"]);
    assert!(admin_role.protected && admin_role.enabled);
    assert_eq!(admin_role.quota.vms, Some(10));
    assert!(admin_role.created_at > 0);
    let off_role = store
        .insert_role(&NewRole {
            name: format!("off-{t}"),
            code: format!("off_{t}"),
            description: None,
            enabled: false,
            protected: false,
            permissions: vec!["host.write".into()],
            quota: Quota::default(),
        })
        .await
        .unwrap();
    let user_role = store
        .insert_role(&NewRole {
            name: format!("users-{t}"),
            code: format!("user_{t}"),
            description: None,
            enabled: true,
            protected: false,
            permissions: vec!["vm.read".into(), "log.read".into()],
            quota: Quota::default(),
        })
        .await
        .unwrap();
    let dup = NewRole {
        name: admin_role.name.clone(),
        code: format!("other_{t}"),
        description: None,
        enabled: true,
        protected: false,
        permissions: vec![],
        quota: Quota::default(),
    };
    assert_eq!(conflict_column(store.insert_role(&dup).await), "name");
    let dup = NewRole {
        name: format!("other-{t}"),
        code: admin_role.code.clone(),
        ..dup
    };
    assert_eq!(conflict_column(store.insert_role(&dup).await), "code");
    assert_eq!(
        store.role_by_code(&admin_role.code).await.unwrap(),
        Some(admin_role.clone())
    );
    assert_eq!(
        store.role_by_id(admin_role.id).await.unwrap(),
        Some(admin_role.clone())
    );
    assert_eq!(
        store.role_by_code(&format!("none_{t}")).await.unwrap(),
        None
    );

    let mut changed = user_role.clone();
    changed.description = Some("people".into());
    changed.quota.nat_rules = Some(4);
    store.update_role(&changed).await.unwrap();
    let user_role = store.role_by_id(user_role.id).await.unwrap().unwrap();
    assert_eq!(user_role.description.as_deref(), Some("people"));
    assert_eq!(user_role.quota.nat_rules, Some(4));
    changed.name = admin_role.name.clone();
    assert_eq!(conflict_column(store.update_role(&changed).await), "name");
    store
        .set_role_permissions(
            user_role.id,
            &["vm.power".to_string(), "log.read".to_string()],
        )
        .await
        .unwrap();
    let user_role = store.role_by_id(user_role.id).await.unwrap().unwrap();
    assert_eq!(user_role.permissions, vec!["log.read", "vm.power"]);

    let (roles, total) = store.list_roles(Some(&upper), None).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(
        roles.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![admin_role.id, off_role.id, user_role.id]
    );
    assert_eq!(roles[2].permissions, user_role.permissions);
    let (roles, total) = store.list_roles(Some(&t), Some(page(1, 1))).await.unwrap();
    assert_eq!((roles.len(), total), (1, 3));
    assert_eq!(roles[0].id, off_role.id);
    assert!(store.list_roles(None, None).await.unwrap().1 >= 3);

    // Users.
    let alice = store
        .insert_user(&NewUser {
            external_id: Some(format!("ext-{t}-1")),
            account: format!("Alice-{t}"),
            name: format!("Alice {t}"),
            email: Some(format!("alice-{t}@example.test")),
            phone: Some(format!("+1-{t}-1")),
            enabled: true,
            protected: false,
            remark: None,
            password_hash: "$argon2id$a".into(),
            quota: Quota {
                vms: Some(3),
                ..Default::default()
            },
            roles: vec![user_role.id, admin_role.id, user_role.id],
        })
        .await
        .unwrap();
    assert_eq!(alice.roles, vec![admin_role.id, user_role.id]);
    assert_eq!(alice.quota.vms, Some(3));
    assert_eq!((alice.failed_logins, alice.locked_until), (0, 0));
    assert_eq!(alice.login_at, None);
    assert!(alice.created_at > 0 && alice.updated_at == alice.created_at);
    let bob = store
        .insert_user(&NewUser {
            external_id: None,
            account: format!("bob-{t}"),
            name: format!("Bob {t}"),
            email: None,
            phone: None,
            enabled: false,
            protected: false,
            remark: Some("r".into()),
            password_hash: "$argon2id$b".into(),
            quota: Quota::default(),
            roles: vec![off_role.id],
        })
        .await
        .unwrap();
    assert_eq!(bob.roles, vec![off_role.id]);
    // A second user without email, phone or external id is no conflict.
    let carol = store
        .insert_user(&NewUser {
            external_id: None,
            account: format!("carol-{t}"),
            name: format!("Carol_{t}"),
            email: None,
            phone: None,
            enabled: true,
            protected: false,
            remark: None,
            password_hash: "$argon2id$c".into(),
            quota: Quota::default(),
            roles: vec![],
        })
        .await
        .unwrap();
    assert!(carol.roles.is_empty());

    let fresh = |account: String| NewUser {
        external_id: None,
        account,
        name: "dup".into(),
        email: None,
        phone: None,
        enabled: true,
        protected: false,
        remark: None,
        password_hash: "x".into(),
        quota: Quota::default(),
        roles: vec![],
    };
    let d = fresh(format!("ALICE-{upper}"));
    assert_eq!(conflict_column(store.insert_user(&d).await), "account");
    let d = NewUser {
        email: Some(format!("ALICE-{upper}@EXAMPLE.TEST")),
        ..fresh(format!("d1-{t}"))
    };
    assert_eq!(conflict_column(store.insert_user(&d).await), "email");
    let d = NewUser {
        phone: alice.phone.clone(),
        ..fresh(format!("d2-{t}"))
    };
    assert_eq!(conflict_column(store.insert_user(&d).await), "phone");
    let d = NewUser {
        external_id: alice.external_id.clone(),
        ..fresh(format!("d3-{t}"))
    };
    assert_eq!(conflict_column(store.insert_user(&d).await), "external_id");
    let d = NewUser {
        roles: vec![admin_role.id],
        ..fresh(format!("ALICE-{upper}"))
    };
    assert!(store.insert_user(&d).await.is_err());
    assert!(
        store.role_members(admin_role.id).await.unwrap() == vec![alice.id],
        "a refused user left role links"
    );

    let by = |key, value: String| async move { store.user_by_key(key, &value).await.unwrap() };
    assert_eq!(
        by(UserKey::Account, format!("alice-{upper}")).await,
        Some(alice.clone())
    );
    assert_eq!(
        by(UserKey::Email, format!("Alice-{upper}@Example.Test")).await,
        Some(alice.clone())
    );
    assert_eq!(
        by(UserKey::Phone, format!("+1-{t}-1")).await.map(|u| u.id),
        Some(alice.id)
    );
    assert_eq!(
        by(UserKey::ExternalId, format!("ext-{t}-1"))
            .await
            .map(|u| u.id),
        Some(alice.id)
    );
    assert_eq!(by(UserKey::Account, format!("nobody-{t}")).await, None);
    assert_eq!(store.user_by_id(bob.id).await.unwrap(), Some(bob.clone()));

    let list = |filter: UserFilter| async move {
        let (users, total) = store.list_users(&filter).await.unwrap();
        (users.iter().map(|u| u.id).collect::<Vec<_>>(), total)
    };
    let mine = |account: &str| UserFilter {
        account: Some(account.to_string()),
        ..Default::default()
    };
    assert_eq!(
        list(mine(&upper)).await,
        (vec![alice.id, bob.id, carol.id], 3)
    );
    assert_eq!(
        list(UserFilter {
            page: page(1, 1),
            ..mine(&t)
        })
        .await,
        (vec![bob.id], 3)
    );
    assert_eq!(
        list(UserFilter {
            page: page(3, 10),
            ..mine(&t)
        })
        .await,
        (vec![], 3)
    );
    assert_eq!(
        list(UserFilter {
            enabled: Some(false),
            ..mine(&t)
        })
        .await,
        (vec![bob.id], 1)
    );
    assert_eq!(
        list(UserFilter {
            name: Some(format!("alice {upper}")),
            ..Default::default()
        })
        .await,
        (vec![alice.id], 1)
    );
    // `_` and `%` match themselves, not any character.
    assert_eq!(
        list(UserFilter {
            name: Some(format!("_{t}")),
            ..Default::default()
        })
        .await,
        (vec![carol.id], 1)
    );
    assert_eq!(
        list(UserFilter {
            account: Some(format!("%{t}")),
            ..Default::default()
        })
        .await,
        (vec![], 0)
    );
    let (users, _) = store.list_users(&mine(&t)).await.unwrap();
    assert_eq!(users[0], alice);
    assert_eq!(users[1].roles, vec![off_role.id]);

    let mut profile = alice.clone();
    profile.name = format!("Alicia {t}");
    profile.remark = Some("vip".into());
    profile.quota.memory_mb = Some(4096);
    profile.account = "ignored".into();
    store.update_user(&profile).await.unwrap();
    let alice = store.user_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!(alice.name, format!("Alicia {t}"));
    assert_eq!(alice.remark.as_deref(), Some("vip"));
    assert_eq!(alice.quota.memory_mb, Some(4096));
    assert_eq!(alice.account, format!("Alice-{t}"), "account stays");
    let mut clash = bob.clone();
    clash.email = Some(format!("ALICE-{upper}@example.test"));
    assert_eq!(conflict_column(store.update_user(&clash).await), "email");
    clash.email = None;
    clash.phone = alice.phone.clone();
    assert_eq!(conflict_column(store.update_user(&clash).await), "phone");

    store
        .set_user_login_state(alice.id, 3, 999, None)
        .await
        .unwrap();
    let u = store.user_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!(
        (u.failed_logins, u.locked_until, u.login_at),
        (3, 999, None)
    );
    store
        .set_user_login_state(alice.id, 0, 0, Some(1234))
        .await
        .unwrap();
    store
        .set_user_login_state(alice.id, 1, 0, None)
        .await
        .unwrap();
    let u = store.user_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!((u.failed_logins, u.login_at), (1, Some(1234)));
    store
        .set_user_login_state(alice.id, 2, 77, None)
        .await
        .unwrap();
    store
        .set_user_password(alice.id, "$argon2id$new")
        .await
        .unwrap();
    let u = store.user_by_id(alice.id).await.unwrap().unwrap();
    assert_eq!(u.password_hash, "$argon2id$new");
    assert_eq!((u.failed_logins, u.locked_until), (0, 0));

    // Permissions come from enabled roles only.
    assert_eq!(
        store.user_permissions(alice.id).await.unwrap(),
        vec!["log.read", "vm.power", "vm.read", "vm.write"]
    );
    assert!(store.user_permissions(bob.id).await.unwrap().is_empty());
    assert!(store.user_permissions(carol.id).await.unwrap().is_empty());
    let mut enabled = off_role.clone();
    enabled.enabled = true;
    store.update_role(&enabled).await.unwrap();
    assert_eq!(
        store.user_permissions(bob.id).await.unwrap(),
        vec!["host.write"]
    );
    store
        .set_user_roles(bob.id, &[user_role.id, user_role.id])
        .await
        .unwrap();
    assert_eq!(
        store.user_by_id(bob.id).await.unwrap().unwrap().roles,
        vec![user_role.id]
    );
    assert_eq!(
        store.role_members(user_role.id).await.unwrap(),
        vec![alice.id, bob.id]
    );
    store
        .set_user_roles(carol.id, &[off_role.id])
        .await
        .unwrap();
    assert!(store.delete_role(off_role.id).await.unwrap());
    assert!(!store.delete_role(off_role.id).await.unwrap());
    assert_eq!(store.role_by_id(off_role.id).await.unwrap(), None);
    assert!(store.role_members(off_role.id).await.unwrap().is_empty());
    assert!(store
        .user_by_id(carol.id)
        .await
        .unwrap()
        .unwrap()
        .roles
        .is_empty());

    // Sessions: the refresh jti is compared and set at once.
    let session = Session {
        id: format!("sess-{t}"),
        user_id: alice.id,
        refresh_jti: "j1".into(),
        ip: "192.0.2.1".into(),
        created_at: 1_700_000_000,
        expires_at: 4_000_000_000,
        revoked: false,
    };
    store.insert_session(&session).await.unwrap();
    assert!(matches!(
        store.insert_session(&session).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.session_by_id(&session.id).await.unwrap(),
        Some(session.clone())
    );
    assert!(store
        .rotate_session(&session.id, "j1", "j2", 4_000_000_100)
        .await
        .unwrap());
    assert!(
        !store
            .rotate_session(&session.id, "j1", "j3", 4_000_000_200)
            .await
            .unwrap(),
        "a rotated-away jti is refused"
    );
    let s = store.session_by_id(&session.id).await.unwrap().unwrap();
    assert_eq!(
        (s.refresh_jti.as_str(), s.expires_at),
        ("j2", 4_000_000_100)
    );
    store.revoke_session(&session.id).await.unwrap();
    assert!(
        store
            .session_by_id(&session.id)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(!store
        .rotate_session(&session.id, "j2", "j3", 4_000_000_300)
        .await
        .unwrap());
    for n in 2..4 {
        store
            .insert_session(&Session {
                id: format!("sess-{t}-{n}"),
                ..session.clone()
            })
            .await
            .unwrap();
    }
    assert_eq!(store.revoke_user_sessions(alice.id).await.unwrap(), 2);
    assert_eq!(store.revoke_user_sessions(alice.id).await.unwrap(), 0);
    let old = Session {
        id: format!("sess-{t}-old"),
        expires_at: 1_000,
        ..session.clone()
    };
    store.insert_session(&old).await.unwrap();
    assert!(store.purge_sessions(2_000).await.unwrap() >= 1);
    assert_eq!(store.session_by_id(&old.id).await.unwrap(), None);
    assert!(store.session_by_id(&session.id).await.unwrap().is_some());

    // Personal API tokens.
    let new_token = NewApiToken {
        user_id: alice.id,
        name: "ci".into(),
        token_hash: format!("hash-{t}-1"),
        hint: "idc_ab".into(),
        scopes: vec!["vm.read".into(), "vm.power".into()],
        expires_at: None,
    };
    let t1 = store.insert_api_token(&new_token).await.unwrap();
    assert_eq!(t1.scopes, vec!["vm.read", "vm.power"]);
    assert!(t1.created_at > 0);
    assert_eq!((t1.expires_at, t1.last_used_at), (None, None));
    assert_eq!(
        conflict_column(store.insert_api_token(&new_token).await),
        "token_hash"
    );
    let t2 = store
        .insert_api_token(&NewApiToken {
            token_hash: format!("hash-{t}-2"),
            scopes: vec![],
            expires_at: Some(4_000_000_000),
            ..new_token.clone()
        })
        .await
        .unwrap();
    assert_eq!(t2.expires_at, Some(4_000_000_000));
    assert_eq!(
        store.api_token_by_hash(&t1.token_hash).await.unwrap(),
        Some(t1.clone())
    );
    assert_eq!(
        store.list_api_tokens(alice.id).await.unwrap(),
        vec![t1.clone(), t2.clone()]
    );
    assert!(store.list_api_tokens(bob.id).await.unwrap().is_empty());
    store.touch_api_token(t1.id, 4321).await.unwrap();
    assert_eq!(
        store
            .api_token_by_hash(&t1.token_hash)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(4321)
    );
    assert!(!store.delete_api_token(t1.id, bob.id).await.unwrap());
    assert!(store.delete_api_token(t1.id, alice.id).await.unwrap());
    assert!(!store.delete_api_token(t1.id, alice.id).await.unwrap());
    assert_eq!(store.api_token_by_hash(&t1.token_hash).await.unwrap(), None);

    // The login log.
    for (user_id, account, status) in [
        (Some(alice.id), alice.account.as_str(), "succeed"),
        (Some(alice.id), alice.account.as_str(), "failed"),
        (None, "ghost", "failed"),
        (Some(bob.id), bob.account.as_str(), "locked"),
    ] {
        store
            .insert_login_log(NewLoginLog {
                user_id,
                account,
                ip: "192.0.2.1",
                status,
                reason: "r",
            })
            .await
            .unwrap();
    }
    let logins = |filter: LogFilter| async move { store.list_login_logs(&filter).await.unwrap() };
    let of_alice = LogFilter {
        user_id: Some(alice.id),
        ..Default::default()
    };
    let (entries, total) = logins(of_alice.clone()).await;
    assert_eq!(total, 2);
    assert_eq!(
        entries
            .iter()
            .map(|e| e.status.as_str())
            .collect::<Vec<_>>(),
        vec!["succeed", "failed"],
        "oldest first"
    );
    assert_eq!(entries[0].user_name.as_deref(), Some(alice.name.as_str()));
    assert_eq!(entries[0].account, alice.account);
    assert!(entries[0].ts > 0);
    let (entries, total) = logins(LogFilter {
        desc: true,
        ..of_alice.clone()
    })
    .await;
    assert_eq!((entries[0].status.as_str(), total), ("failed", 2));
    let (entries, total) = logins(LogFilter {
        page: page(1, 1),
        ..of_alice.clone()
    })
    .await;
    assert_eq!((entries.len(), total), (1, 2));
    assert_eq!(entries[0].status, "failed");
    let (entries, total) = logins(LogFilter {
        desc: true,
        page: page(0, 4),
        ..Default::default()
    })
    .await;
    assert!(total >= 4);
    let ghost = entries.iter().find(|e| e.account == "ghost").unwrap();
    assert_eq!((ghost.user_id, ghost.user_name.as_deref()), (None, None));

    // The operation log, filtered.
    for (user_id, action, hs) in [
        (Some(alice.id), "vm.create", Some(host_name)),
        (Some(alice.id), "VM.Power.Start", None),
        (Some(alice.id), "host.update", Some(host_name)),
        (Some(bob.id), "vm.create", Some(host_name)),
    ] {
        store
            .insert_log(NewLog {
                actor: "someone",
                user_id,
                source_ip: "192.0.2.1",
                face: "api",
                action,
                hs_name: hs,
                target: None,
                ok: true,
                message: "",
            })
            .await
            .unwrap();
    }
    let ops = |filter: LogFilter| async move {
        let (entries, total) = store.list_logs(&filter).await.unwrap();
        (
            entries.into_iter().map(|e| e.action).collect::<Vec<_>>(),
            total,
        )
    };
    assert_eq!(
        ops(of_alice.clone()).await,
        (
            vec![
                "vm.create".to_string(),
                "VM.Power.Start".into(),
                "host.update".into()
            ],
            3
        )
    );
    let (entries, _) = store.list_logs(&of_alice).await.unwrap();
    assert_eq!(entries[0].user_id, Some(alice.id));
    assert_eq!(
        ops(LogFilter {
            operation: Some("vm.".into()),
            desc: true,
            ..of_alice.clone()
        })
        .await,
        (vec!["VM.Power.Start".to_string(), "vm.create".into()], 2)
    );
    assert_eq!(
        ops(LogFilter {
            page: page(2, 5),
            ..of_alice.clone()
        })
        .await,
        (vec!["host.update".to_string()], 3)
    );
    assert_eq!(
        ops(LogFilter {
            hs_name: Some(host_name.to_string()),
            ..of_alice.clone()
        })
        .await
        .1,
        2
    );
    assert_eq!(
        ops(LogFilter {
            operation: Some("v_".into()),
            ..of_alice.clone()
        })
        .await
        .1,
        0,
        "`_` is no wildcard"
    );

    // Tasks of one actor.
    let actor = format!("actor-{t}");
    let a1 = store
        .create_task("vm.create", Some(host_name), None, &actor)
        .await
        .unwrap();
    store
        .create_task("vm.create", Some(host_name), None, "admin")
        .await
        .unwrap();
    let a2 = store
        .create_task("vm.delete", None, None, &actor)
        .await
        .unwrap();
    let ids =
        |tasks: Vec<ironidc_core::model::Task>| tasks.iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_tasks(None, Some(&actor), 10).await.unwrap()),
        vec![a2.id, a1.id]
    );
    assert_eq!(
        ids(store
            .list_tasks(Some(host_name), Some(&actor), 10)
            .await
            .unwrap()),
        vec![a1.id]
    );
    assert_eq!(
        ids(store.list_tasks(None, Some(&actor), 1).await.unwrap()),
        vec![a2.id]
    );
    store.fail_running_tasks("done").await.unwrap();

    // Ownership and usage.
    let vm_config = |uuid: &str, cpu, mem, hdd| VmConfig {
        vm_uuid: uuid.to_string(),
        cpu_num: cpu,
        mem_num: mem,
        hdd_num: hdd,
        ..Default::default()
    };
    let mut vms = Vec::new();
    for (n, owner, cpu, mem, hdd) in [
        (1, Some(alice.id), 2, 512, 1024),
        (2, Some(alice.id), 1, 256, 2048),
        (3, None, 4, 4096, 10240),
        (4, Some(bob.id), 8, 8192, 8192),
    ] {
        let uuid = format!("own{n}-{t}");
        let vm = store
            .insert_vm(NewVm {
                host_id,
                uuid: &uuid,
                config: &vm_config(&uuid, cpu, mem, hdd),
                state: PowerState::Stopped,
                os_pass_sealed: None,
                owner_id: owner,
            })
            .await
            .unwrap();
        assert_eq!(vm.owner_id, owner);
        vms.push(vm);
    }
    assert_eq!(
        store
            .vm_by_uuid(host_id, &vms[0].uuid)
            .await
            .unwrap()
            .unwrap()
            .owner_id,
        Some(alice.id)
    );
    store.set_vm_owner(vms[2].id, Some(alice.id)).await.unwrap();
    assert_eq!(
        store
            .vm_by_uuid(host_id, &vms[2].uuid)
            .await
            .unwrap()
            .unwrap()
            .owner_id,
        Some(alice.id)
    );
    let rule = NatRule {
        id: 0,
        host_id,
        vm_id: vms[0].id,
        protocol: "tcp".into(),
        external_port: 64000,
        internal_ip: "10.0.0.5".into(),
        internal_port: 22,
        description: String::new(),
        created_at: 0,
    };
    store.insert_nat_rule(&rule).await.unwrap();
    store
        .insert_nat_rule(&NatRule {
            vm_id: vms[1].id,
            external_port: 64001,
            ..rule.clone()
        })
        .await
        .unwrap();
    store
        .insert_nat_rule(&NatRule {
            vm_id: vms[3].id,
            external_port: 64002,
            ..rule.clone()
        })
        .await
        .unwrap();
    store
        .insert_proxy(&ProxyBinding {
            id: 0,
            host_id,
            vm_id: vms[1].id,
            domain: format!("own-{t}.example.test"),
            backend_ip: "10.0.0.6".into(),
            backend_port: 80,
            ssl_enabled: false,
            ssl_type: String::new(),
            cert_pem: None,
            key_sealed: None,
            cert_not_after: None,
            cert_error: None,
            description: String::new(),
            created_at: 0,
        })
        .await
        .unwrap();
    assert_eq!(
        store.usage_of(alice.id).await.unwrap(),
        Usage {
            vms: 3,
            vcpus: 7,
            memory_mb: 4864,
            disk_mb: 13312,
            nat_rules: 2,
            proxies: 1,
        }
    );
    store.set_vm_owner(vms[2].id, None).await.unwrap();
    assert_eq!(
        store
            .vm_by_uuid(host_id, &vms[2].uuid)
            .await
            .unwrap()
            .unwrap()
            .owner_id,
        None
    );
    assert_eq!(store.usage_of(alice.id).await.unwrap().vms, 2);
    assert_eq!(
        store.usage_of(bob.id).await.unwrap(),
        Usage {
            vms: 1,
            vcpus: 8,
            memory_mb: 8192,
            disk_mb: 8192,
            nat_rules: 1,
            proxies: 0,
        }
    );

    // Deleting a user unowns its VMs and drops its sessions, tokens and
    // role links; its log rows stay, without a name.
    assert!(store.delete_user(alice.id).await.unwrap());
    assert!(!store.delete_user(alice.id).await.unwrap());
    assert_eq!(store.user_by_id(alice.id).await.unwrap(), None);
    for vm in &vms[..2] {
        let vm = store.vm_by_uuid(host_id, &vm.uuid).await.unwrap().unwrap();
        assert_eq!(vm.owner_id, None);
    }
    assert_eq!(store.usage_of(alice.id).await.unwrap(), Usage::default());
    assert_eq!(store.session_by_id(&session.id).await.unwrap(), None);
    assert_eq!(store.api_token_by_hash(&t2.token_hash).await.unwrap(), None);
    assert_eq!(
        store.role_members(user_role.id).await.unwrap(),
        vec![bob.id]
    );
    let (entries, total) = logins(of_alice.clone()).await;
    assert_eq!(total, 2);
    assert!(entries.iter().all(|e| e.user_name.is_none()));
    assert_eq!(ops(of_alice).await.1, 3);
    // The account can be taken again.
    let again = store
        .insert_user(&fresh(format!("alice-{t}")))
        .await
        .unwrap();
    assert!(store.delete_user(again.id).await.unwrap());

    for vm in &vms {
        store.delete_vm(vm.id).await.unwrap();
    }
    for user in [bob.id, carol.id] {
        assert!(store.delete_user(user).await.unwrap());
    }
    for role in [admin_role.id, user_role.id] {
        assert!(store.delete_role(role).await.unwrap());
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// What two controllers `a` and `b` on one database share: leases,
/// presence, busy marks, the lockout, nonces, invalidations, first-wins
/// settings and the controller of each task. On SQLite (one controller)
/// leases are always held and nothing is shared beyond the rows.
async fn cluster_contract(a: &SqlStore, b: &SqlStore) {
    let shared = a.shared();
    assert_eq!(a.controller(), "a#00000001");
    assert_eq!(b.controller(), "b#00000002");
    let t = unix_now();

    // Leases: one holder at a time; released or dead, another takes it.
    assert!(a.hold_lease(Lease::Jobs).await.unwrap());
    assert!(a.hold_lease(Lease::Jobs).await.unwrap(), "still held");
    assert_eq!(b.hold_lease(Lease::Jobs).await.unwrap(), !shared);
    let owner = a.lease_owner(Lease::Jobs).await.unwrap();
    assert_eq!(owner.as_deref(), Some("a#00000001"));
    assert!(
        b.hold_lease(Lease::Seeding).await.unwrap(),
        "leases are independent"
    );
    b.release_lease(Lease::Seeding).await.unwrap();
    a.release_lease(Lease::Jobs).await.unwrap();
    assert!(b.hold_lease(Lease::Jobs).await.unwrap());
    if shared {
        assert_eq!(
            a.lease_owner(Lease::Jobs).await.unwrap().as_deref(),
            Some("b#00000002")
        );
        assert!(!a.hold_lease(Lease::Jobs).await.unwrap());
        // The lock dies with its session: a store whose process ends (its
        // connections close) frees the lease for the others.
        let c = b.clone().with_controller("c#00000003");
        assert!(!c.hold_lease(Lease::Jobs).await.unwrap());
        b.release_lease(Lease::Jobs).await.unwrap();
        assert!(c.hold_lease(Lease::Jobs).await.unwrap());
        drop(c);
        let mut taken = false;
        for _ in 0..50 {
            if a.hold_lease(Lease::Jobs).await.unwrap() {
                taken = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(taken, "the dropped holder's lease was not freed");
        a.release_lease(Lease::Jobs).await.unwrap();
        assert_eq!(a.lease_owner(Lease::Jobs).await.unwrap(), None);
    }

    // Presence.
    a.heartbeat("a", t - 100).await.unwrap();
    b.heartbeat("b", t).await.unwrap();
    let live = b.live_controllers(t - 30).await.unwrap();
    assert!(live.contains(&"b#00000002".to_string()), "{live:?}");
    assert!(!live.contains(&"a#00000001".to_string()), "{live:?}");
    a.heartbeat("a", t).await.unwrap();
    let live = b.live_controllers(t - 30).await.unwrap();
    assert_eq!(live.contains(&"a#00000001".to_string()), shared, "{live:?}");
    a.leave().await.unwrap();
    assert!(!b
        .live_controllers(t - 30)
        .await
        .unwrap()
        .contains(&"a#00000001".to_string()));
    assert_eq!(b.purge_controllers(t + 1).await.unwrap(), u64::from(shared));

    // Busy marks.
    let key = format!("1:busy-{t}-{}", std::process::id());
    let mark = |token: &'static str, expires_at| NewBusyMark {
        key: &key,
        activity: "backing up",
        token,
        expires_at,
    };
    assert_eq!(a.try_mark_busy(&mark("t1", t + 30), t).await.unwrap(), None);
    assert_eq!(
        b.try_mark_busy(&mark("t2", t + 30), t)
            .await
            .unwrap()
            .as_deref(),
        Some("backing up")
    );
    assert_eq!(
        b.busy_elsewhere(&key, t).await.unwrap().as_deref(),
        Some("backing up")
    );
    assert_eq!(a.busy_elsewhere(&key, t).await.unwrap(), None, "own mark");
    // Renewed, it outlives its first expiry; expired, another takes it.
    a.renew_busy(&key, "t1", t + 60).await.unwrap();
    assert!(b
        .try_mark_busy(&mark("t2", t + 90), t + 45)
        .await
        .unwrap()
        .is_some());
    assert_eq!(b.busy_elsewhere(&key, t + 61).await.unwrap(), None);
    assert_eq!(
        b.try_mark_busy(&mark("t2", t + 90), t + 61).await.unwrap(),
        None
    );
    // Only the mark's own token clears it.
    a.clear_busy(&key, "t1").await.unwrap();
    assert!(a.busy_elsewhere(&key, t + 61).await.unwrap().is_some());
    b.clear_busy(&key, "t2").await.unwrap();
    assert_eq!(a.busy_elsewhere(&key, t).await.unwrap(), None);
    assert_eq!(a.try_mark_busy(&mark("t3", t + 5), t).await.unwrap(), None);
    assert!(b.purge_busy(t + 10).await.unwrap() >= 1);
    assert_eq!(b.busy_elsewhere(&key, t).await.unwrap(), None);

    // The lockout: counted in the store, so every controller sees it.
    let rule = LockoutRule {
        now: t,
        after: 3,
        lock_secs: 600,
    };
    let user = a
        .insert_user(&NewUser {
            external_id: None,
            account: format!("lock-{t}-{}", std::process::id()),
            name: "lock".into(),
            email: None,
            phone: None,
            enabled: true,
            protected: false,
            remark: None,
            password_hash: "x".into(),
            quota: Quota::default(),
            roles: vec![],
        })
        .await
        .unwrap();
    let counted = |failed, locked_until| LoginFailures {
        failed,
        locked_until,
    };
    assert_eq!(
        a.count_login_failure(user.id, rule).await.unwrap(),
        counted(1, 0)
    );
    assert_eq!(
        b.count_login_failure(user.id, rule).await.unwrap(),
        counted(2, 0)
    );
    assert_eq!(
        a.count_login_failure(user.id, rule).await.unwrap(),
        counted(0, t + 600)
    );
    let stored = b.user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!((stored.failed_logins, stored.locked_until), (0, t + 600));
    let ghost = format!("ghost-{t}-{}", std::process::id());
    assert_eq!(b.unknown_login_locked_until(&ghost).await.unwrap(), 0);
    for (i, store) in [a, b, a].into_iter().enumerate() {
        let c = store
            .count_unknown_login_failure(&ghost, rule)
            .await
            .unwrap();
        let expected = if i == 2 {
            counted(0, t + 600)
        } else {
            counted(i as i64 + 1, 0)
        };
        assert_eq!(c, expected);
    }
    assert_eq!(b.unknown_login_locked_until(&ghost).await.unwrap(), t + 600);
    // Kept while locked, forgotten once old and unlocked.
    assert_eq!(a.purge_login_failures(t + 10).await.unwrap(), 0);
    assert!(a.purge_login_failures(t + 601).await.unwrap() >= 1);
    assert_eq!(b.unknown_login_locked_until(&ghost).await.unwrap(), 0);

    // Nonces: once per key until they expire.
    let nkey = format!("rstack-{t}-{}", std::process::id());
    assert!(a.accept_nonce(&nkey, "n1", t + 60, t).await.unwrap());
    assert!(
        !b.accept_nonce(&nkey, "n1", t + 60, t + 1).await.unwrap(),
        "replay"
    );
    assert!(b.accept_nonce(&nkey, "n2", t + 60, t).await.unwrap());
    assert!(b
        .accept_nonce(&format!("{nkey}-other"), "n1", t + 60, t)
        .await
        .unwrap());
    assert!(
        b.accept_nonce(&nkey, "n1", t + 120, t + 61).await.unwrap(),
        "expired: new"
    );
    assert!(!a.accept_nonce(&nkey, "n1", t + 120, t + 62).await.unwrap());
    assert!(a.purge_nonces(t + 61).await.unwrap() >= 2);
    assert!(a.accept_nonce(&nkey, "n2", t + 200, t + 62).await.unwrap());
    a.purge_nonces(t + 1000).await.unwrap();

    // First-wins settings (the token signing key of controllers starting
    // together).
    let skey = format!("init-{t}-{}", std::process::id());
    assert_eq!(a.init_setting(&skey, "first").await.unwrap(), "first");
    assert_eq!(b.init_setting(&skey, "second").await.unwrap(), "first");

    // Tasks carry the controller that runs them.
    let task = b
        .create_task("vm.update", None, None, "admin")
        .await
        .unwrap();
    assert_eq!(task.controller.as_deref(), Some("b#00000002"));
    b.finish_task(task.id, TaskStatus::Failed, None, Some("test"))
        .await
        .unwrap();

    // Invalidations: a change on one controller reaches the others'
    // listeners (PostgreSQL); nothing is sent on SQLite.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    b.watch_invalidations(std::sync::Arc::new(move |what| {
        let _ = tx.send(what);
    }))
    .await
    .unwrap();
    a.revoke_user_sessions(user.id).await.unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(1), rx.recv()).await;
    if shared {
        assert_eq!(got.ok().flatten(), Some(Invalidation::Auth));
    } else {
        // (The handler is not even kept: the channel may close.)
        assert!(!matches!(got, Ok(Some(_))), "SQLite sends nothing: {got:?}");
    }
    // Logins and refreshes invalidate nothing: no broadcast per login.
    while rx.try_recv().is_ok() {}
    a.insert_session(&Session {
        id: format!("s-{t}-{}", std::process::id()),
        user_id: user.id,
        refresh_jti: "j".into(),
        ip: "127.0.0.1".into(),
        created_at: t,
        expires_at: t + 60,
        revoked: false,
    })
    .await
    .unwrap();
    a.delete_user(user.id).await.unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(1), rx.recv()).await;
    if shared {
        assert_eq!(got.ok().flatten(), Some(Invalidation::Auth), "user deleted");
        assert!(rx.try_recv().is_err(), "one notification, for the delete");
        // Proxy changes reload every controller's routes.
        a.delete_proxy(-1).await.unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(1), rx.recv()).await;
        assert_eq!(got.ok().flatten(), Some(Invalidation::Proxy));
    }
}

/// The two controllers of `cluster_contract` over `url`.
async fn two_controllers(url: &str) -> (SqlStore, SqlStore) {
    let a = SqlStore::connect(url).await.expect("connect a");
    let b = SqlStore::connect(url).await.expect("connect b");
    (
        a.with_controller("a#00000001"),
        b.with_controller("b#00000002"),
    )
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let cut = base.rfind('/').expect("a database in the URL");
    format!("{}/{name}{query}", &base[..cut])
}

#[tokio::test]
async fn sqlite_contract() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
    let store = SqlStore::connect(&url).await.expect("connect");
    contract(&store, "sqlite").await;
    // Re-opening runs no migration twice.
    drop(store);
    SqlStore::connect(&url).await.expect("reconnect");
}

#[tokio::test]
async fn sqlite_cluster_contract() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
    let (a, b) = two_controllers(&url).await;
    cluster_contract(&a, &b).await;
}

#[tokio::test]
async fn postgres_cluster_contract() {
    let Ok(url) = std::env::var("IRONIDC_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must set IRONIDC_TEST_POSTGRES_URL"
        );
        eprintln!("SKIPPED: set IRONIDC_TEST_POSTGRES_URL=postgres://… to run the PostgreSQL cluster contract");
        return;
    };
    // A database of its own: the leases are per database, and another run
    // on the shared test database must not hold them.
    use sqlx::Executor;
    let name = format!("ironidc_cluster_{}", std::process::id());
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect");
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
        .await
        .expect("drop");
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create database (the role needs CREATEDB)");
    let db_url = with_database(&url, &name);
    {
        let (a, b) = two_controllers(&db_url).await;
        cluster_contract(&a, &b).await;
    }
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .expect("drop");
}

#[tokio::test]
async fn postgres_contract() {
    let Ok(url) = std::env::var("IRONIDC_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must set IRONIDC_TEST_POSTGRES_URL"
        );
        eprintln!("SKIPPED: set IRONIDC_TEST_POSTGRES_URL=postgres://… to run the PostgreSQL store contract");
        return;
    };
    let store = SqlStore::connect(&url).await.expect("connect");
    let tag = format!("pg{}", std::process::id());
    contract(&store, &tag).await;
}
