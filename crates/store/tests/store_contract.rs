//! One contract run against both backends: SQLite (always) and PostgreSQL
//! (from `IRONIDC_TEST_POSTGRES_URL`; required when `CI` is set).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ironidc_core::engine::PowerState;
use ironidc_core::model::{
    HostConfig, HwStatus, NatRule, NicConfig, ProxyBinding, TaskStatus, VmAddress, VmConfig,
};
use ironidc_core::store::{NewHost, NewLog, NewVm, Scope, Store, StoreError};
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
        })
        .await
        .expect("insert vm");
    assert_eq!(vm.hs_name, host_name);
    assert_eq!(vm.config.cpu_num, 2);
    assert_eq!(vm.os_pass_sealed.as_deref(), Some("enc:v1:p"));
    let dup = store
        .insert_vm(NewVm {
            host_id: host.id,
            uuid: &vm_name,
            config: &vm_config,
            state: PowerState::Stopped,
            os_pass_sealed: None,
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
    let history = store.vm_history(vm.id, 0, 10).await.expect("history");
    assert_eq!(history.len(), 1);

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
    let failed = store
        .fail_running_tasks("interrupted")
        .await
        .expect("fail running");
    assert!(failed >= 1);
    let tasks = store.list_tasks(Some(&host_name), 10).await.expect("tasks");
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0].id, t2.id, "newest first");
    assert_eq!(tasks[0].status, TaskStatus::Failed);
    assert_eq!(tasks[1].status, TaskStatus::Succeeded);
    assert_eq!(tasks[1].progress, 100);
    assert_eq!(tasks[1].result, Some(serde_json::json!({"ok": 1})));
    assert_eq!(
        store
            .list_tasks(Some(&host_name), 1)
            .await
            .expect("limit")
            .len(),
        1
    );

    for ok in [true, false] {
        store
            .insert_log(NewLog {
                actor: "admin",
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
    let all = store.list_tasks(None, 1000).await.expect("all tasks");
    assert!(all.iter().any(|t| t.id == t2.id) && all.windows(2).all(|w| w[0].id > w[1].id));
    let logs = store.list_logs(Some(&host_name), 10).await.expect("logs");
    assert_eq!(logs.len(), 2);
    assert!(!logs[0].ok && logs[1].ok, "newest first");
    assert!(store.list_logs(None, 1000).await.expect("all logs").len() >= 2);

    store.set_setting("k", "v1").await.expect("set");
    store.set_setting("k", "v2").await.expect("overwrite");
    assert_eq!(
        store.get_setting("k").await.expect("get").as_deref(),
        Some("v2")
    );

    let vm_id = network_contract(store, host.id, &vm_name, tag).await;

    store.delete_vm(vm_id).await.expect("delete vm");
    assert!(store
        .vm_by_uuid(host.id, &vm_name)
        .await
        .expect("get")
        .is_none());
    store.delete_host(host.id).await.expect("delete host");
    assert!(store.host_by_name(&host_name).await.expect("get").is_none());
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
        })
        .await;
    assert!(
        matches!(&clash, Err(StoreError::Conflict(w)) if w.starts_with("mac_addr")),
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
        })
        .await
        .unwrap()
        .id
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
