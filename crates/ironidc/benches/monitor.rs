//! `cargo bench -p ironidc --bench monitor`: the wall time of one monitor
//! pass over 10,000 VMs on 100 hosts (100 each), none running, in-process
//! against a real SQLite store and the QEMU engine reading real VM
//! directories. Figures are printed, never asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ironidc_core::model::{HostConfig, VmConfig};
use ironidc_core::store::{NewHost, Store};
use ironidc_core::{EngineRegistry, ServiceOptions, Services};
use ironidc_store::SqlStore;

const HOSTS: usize = 100;
const VMS_PER_HOST: usize = 100;
const PASSES: usize = 5;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bench.db?mode=rwc", dir.path().display());
    let store = SqlStore::connect(&url).await.unwrap();
    for h in 0..HOSTS {
        let vms_dir = dir.path().join(format!("h{h}/vms"));
        let config = HostConfig {
            system_path: vms_dir.display().to_string(),
            images_path: dir.path().join("images").display().to_string(),
            ..HostConfig::default()
        };
        let host = store
            .insert_host(NewHost {
                name: &format!("h{h}"),
                engine: "qemu",
                enabled: true,
                config: &config,
            })
            .await
            .unwrap();
        let configs: Vec<VmConfig> = (0..VMS_PER_HOST)
            .map(|v| VmConfig {
                vm_uuid: format!("h{h}-vm{v}"),
                ..VmConfig::default()
            })
            .collect();
        for c in &configs {
            std::fs::create_dir_all(vms_dir.join(&c.vm_uuid)).unwrap();
        }
        store.insert_vms_bulk(host.id, &configs).await.unwrap();
    }
    let secrets =
        ironidc_core::secrets::SecretBox::load_or_create(&dir.path().join("key")).unwrap();
    let network = ironidc_net::HostNetwork::new(
        ironidc_net::HostNetworkOptions {
            run_dir: dir.path().join("run"),
            acme: None,
        },
        ironidc_net::proxy::ReverseProxy::new(),
    );
    let engine =
        ironidc_engine::qemu::QemuEngine::new(ironidc_engine::qemu::QemuOptions::default());
    let services = Services::new(
        Arc::new(store),
        EngineRegistry::default().with("qemu", Arc::new(engine)),
        secrets,
        Arc::new(network),
        ServiceOptions::new(dir.path().to_path_buf()),
    );
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..PASSES {
        let started = Instant::now();
        services.sample_all().await;
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "monitor pass, {} VMs on {HOSTS} hosts (none running): median {:.0} ms, best {:.0} ms, worst {:.0} ms ({PASSES} passes)",
        HOSTS * VMS_PER_HOST,
        times[PASSES / 2].as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        times[PASSES - 1].as_secs_f64() * 1000.0,
    );
}
