//! MAC allocation through the service layer, with the MAC source injected
//! so that collisions are certain: a create whose drawn MACs are already
//! taken on another host succeeds with a free one; only a MAC the caller
//! chose is refused. Real store (SQLite) and real QEMU engine (`qemu-img`
//! linked clones; no guest is started).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use ironidc_core::model::{HostConfig, NicConfig, VmConfig};
use ironidc_core::service::mac_addresses::{mac_of, MacSource, MAC_ATTEMPTS};
use ironidc_core::service::{HostInput, VmCreateInput};
use ironidc_core::{Actor, CoreError, EngineRegistry, ServiceOptions, Services};
use ironidc_engine::qemu::{QemuEngine, QemuOptions};

/// Services over a fresh SQLite file whose MACs come from `source`.
async fn services(dir: &std::path::Path, source: MacSource) -> Services {
    let mut opts = ServiceOptions::new(dir.to_path_buf());
    opts.mac_source = source;
    let engines =
        EngineRegistry::default().with("qemu", Arc::new(QemuEngine::new(QemuOptions::default())));
    let (services, _) = common::in_process(dir, engines, opts).await;
    let images = common::blank_image_dir(dir);
    for name in ["h1", "h2"] {
        let config: HostConfig = serde_json::from_value(serde_json::json!({
            "images_path": images.to_string_lossy(),
            "system_maps": {"demo": ["blank.qcow2", 0]},
            "server_plan": {"cpu_num": 4, "mem_num": 2048, "hdd_num": 20480},
        }))
        .unwrap();
        services
            .create_host(
                &Actor::system(),
                HostInput {
                    name: name.into(),
                    engine: "qemu".into(),
                    config,
                    enabled: Some(true),
                },
            )
            .await
            .unwrap();
    }
    services
}

/// A source that hands out `octets` in order, then repeats the last.
fn sequence(octets: &[[u8; 3]]) -> MacSource {
    let queue = Arc::new(Mutex::new(octets.iter().copied().collect::<VecDeque<_>>()));
    MacSource::from_fn(move || {
        let mut q = queue.lock().unwrap();
        if q.len() > 1 {
            q.pop_front().unwrap()
        } else {
            q.front().copied().unwrap()
        }
    })
}

fn create_input(uuid: &str, nics: &[(&str, &str)]) -> VmCreateInput {
    VmCreateInput {
        config: VmConfig {
            vm_uuid: uuid.into(),
            cpu_num: 1,
            mem_num: 64,
            hdd_num: 64,
            nic_all: nics
                .iter()
                .map(|(name, mac)| {
                    (
                        name.to_string(),
                        NicConfig {
                            nic_type: "nat".into(),
                            mac_addr: mac.to_string(),
                            ..Default::default()
                        },
                    )
                })
                .collect(),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn mac_of_vm(created: &ironidc_core::service::CreatedVm, nic: &str) -> String {
    created.vm.config.nic_all[nic].mac_addr.clone()
}

#[tokio::test]
async fn a_create_whose_drawn_macs_are_taken_gets_a_free_one() {
    if !common::qemu_available("a_create_whose_drawn_macs_are_taken_gets_a_free_one") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b, free) = ([1, 1, 1], [2, 2, 2], [3, 3, 3]);
    // The generator draws a, b, a, b, free: the first two are held by VMs
    // on the other host (chosen by their callers), so the create of `new`
    // on h1 must skip four taken candidates.
    let s = services(dir.path(), sequence(&[a, b, a, b, free])).await;
    let root = Actor::system();
    for (uuid, mac) in [("holder-a", a), ("holder-b", b)] {
        s.create_vm(&root, "h2", create_input(uuid, &[("nic0", &mac_of(mac))]))
            .await
            .unwrap();
    }
    let created = s
        .create_vm(&root, "h1", create_input("new", &[("nic0", "")]))
        .await
        .expect("a drawn MAC that collides never fails the create");
    assert_eq!(mac_of_vm(&created, "nic0"), mac_of(free));
}

#[tokio::test]
async fn two_nics_of_one_request_never_share_a_drawn_mac() {
    if !common::qemu_available("two_nics_of_one_request_never_share_a_drawn_mac") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = ([0xa, 0, 0], [0xb, 0, 0]);
    let s = services(dir.path(), sequence(&[a, a, a, b])).await;
    let created = s
        .create_vm(
            &Actor::system(),
            "h1",
            create_input("two", &[("nic0", ""), ("nic1", "")]),
        )
        .await
        .unwrap();
    assert_eq!(mac_of_vm(&created, "nic0"), mac_of(a));
    assert_eq!(mac_of_vm(&created, "nic1"), mac_of(b));
}

#[tokio::test]
async fn a_taken_mac_the_caller_chose_is_refused_naming_nic_all() {
    if !common::qemu_available("a_taken_mac_the_caller_chose_is_refused_naming_nic_all") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = services(dir.path(), MacSource::random()).await;
    let root = Actor::system();
    let taken = mac_of([9, 9, 9]);
    s.create_vm(&root, "h2", create_input("holder", &[("nic0", &taken)]))
        .await
        .unwrap();
    let refused = s
        .create_vm(&root, "h1", create_input("copy", &[("nic0", &taken)]))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, CoreError::Invalid { field, .. } if field.starts_with("nic_all")),
        "{refused:?}"
    );
    assert!(
        s.get_vm(&root, "h1", "copy").await.is_err(),
        "no VM is left"
    );
}

#[tokio::test]
async fn a_full_range_refuses_after_a_bounded_number_of_draws() {
    if !common::qemu_available("a_full_range_refuses_after_a_bounded_number_of_draws") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let draws = Arc::new(Mutex::new(0usize));
    let counted = draws.clone();
    let s = services(
        dir.path(),
        MacSource::from_fn(move || {
            *counted.lock().unwrap() += 1;
            [7, 7, 7]
        }),
    )
    .await;
    let root = Actor::system();
    s.create_vm(&root, "h2", create_input("holder", &[("nic0", "")]))
        .await
        .unwrap();
    *draws.lock().unwrap() = 0;
    let refused = s
        .create_vm(&root, "h1", create_input("none-left", &[("nic0", "")]))
        .await
        .unwrap_err();
    assert!(matches!(refused, CoreError::Conflict(_)), "{refused:?}");
    assert_eq!(*draws.lock().unwrap(), MAC_ATTEMPTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_that_draw_the_same_mac_both_succeed() {
    if !common::qemu_available("concurrent_creates_that_draw_the_same_mac_both_succeed") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Both creates draw `a` first: whichever writes its row second finds
    // it taken (by the check, or by the store's unique index when they
    // race) and draws again.
    let next = Arc::new(Mutex::new(0u8));
    let s = services(
        dir.path(),
        MacSource::from_fn(move || {
            let mut n = next.lock().unwrap();
            *n += 1;
            if *n <= 2 {
                [0xa, 0xa, 0xa]
            } else {
                [0xb, 0xb, *n]
            }
        }),
    )
    .await;
    let root = Actor::system();
    let (one, two) = tokio::join!(
        s.create_vm(&root, "h1", create_input("one", &[("nic0", "")])),
        s.create_vm(&root, "h2", create_input("two", &[("nic0", "")])),
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_ne!(mac_of_vm(&one, "nic0"), mac_of_vm(&two, "nic0"));
}
