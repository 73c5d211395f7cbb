//! The agent's client and server over a real TLS + HTTP/2 connection on
//! loopback, with a fake engine: progress lines, typed errors, the secret
//! and the certificate pin.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ironidc_agent::client::RemoteEngine;
use ironidc_agent::identity::{Identity, Loaded};
use ironidc_core::engine::{
    BackupInfo, CloudInitSeed, ConsoleEndpoint, Engine, EngineError, EngineInfo, ExecOutput,
    GuestInterface, HostContext, HostDetails, IsoFile, NicSpec, PowerAction, PowerState,
    ProgressSink, ScannedVm, SnapshotInfo, UpdateOutcome, VmCounters, VmSpec,
};
use ironidc_core::model::HwStatus;
use ironidc_core::remote_host::EnrolmentToken;

struct FakeEngine;

macro_rules! fake {
    ($name:ident) => {
        Err(EngineError::Unavailable(
            concat!("fake: ", stringify!($name)).into(),
        ))
    };
}

#[async_trait]
#[allow(unused_variables)]
impl Engine for FakeEngine {
    async fn info(&self) -> EngineInfo {
        EngineInfo {
            key: "qemu",
            name: "fake",
            description: "fake",
            enabled: true,
            platform: "linux",
            arch: "x86_64",
            is_remote: false,
            messages: vec!["from the fake".into()],
        }
    }

    async fn create_vm(
        &self,
        host: &HostContext,
        spec: &VmSpec,
        progress: &dyn ProgressSink,
    ) -> Result<(), EngineError> {
        assert_eq!(host.hs_name, "h1");
        for (step, percent) in [("clone", 10), ("grow", 60)] {
            progress.report(step, percent);
            // Apart in time, so they cross as separate chunks.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if spec.uuid == "taken" {
            return Err(EngineError::VmExists(spec.uuid.clone()));
        }
        Ok(())
    }

    async fn delete_vm(&self, host: &HostContext, uuid: &str) -> Result<(), EngineError> {
        fake!(delete_vm)
    }

    async fn update_vm(
        &self,
        host: &HostContext,
        spec: &VmSpec,
    ) -> Result<UpdateOutcome, EngineError> {
        fake!(update_vm)
    }

    async fn power(
        &self,
        host: &HostContext,
        uuid: &str,
        action: PowerAction,
        stop_timeout: Duration,
    ) -> Result<(), EngineError> {
        fake!(power)
    }

    async fn state(&self, host: &HostContext, uuid: &str) -> Result<PowerState, EngineError> {
        match uuid {
            "running" => Ok(PowerState::Running),
            _ => Err(EngineError::io(
                host.vms_dir.join(uuid).display().to_string(),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such VM dir"),
            )),
        }
    }

    async fn sample(&self, host: &HostContext, uuid: &str) -> Result<HwStatus, EngineError> {
        fake!(sample)
    }

    async fn scan(&self, host: &HostContext) -> Result<Vec<ScannedVm>, EngineError> {
        fake!(scan)
    }

    async fn host_status(&self, host: &HostContext) -> Result<HwStatus, EngineError> {
        fake!(host_status)
    }

    async fn host_details(&self, host: &HostContext) -> Result<HostDetails, EngineError> {
        fake!(host_details)
    }

    async fn write_seed(
        &self,
        host: &HostContext,
        uuid: &str,
        seed: &CloudInitSeed,
    ) -> Result<(), EngineError> {
        fake!(write_seed)
    }

    async fn counters(&self, host: &HostContext, uuid: &str) -> Result<VmCounters, EngineError> {
        fake!(counters)
    }

    async fn console_endpoint(
        &self,
        host: &HostContext,
        uuid: &str,
    ) -> Result<ConsoleEndpoint, EngineError> {
        fake!(console_endpoint)
    }

    async fn agent_ping(
        &self,
        host: &HostContext,
        uuid: &str,
        timeout: Duration,
    ) -> Result<(), EngineError> {
        fake!(agent_ping)
    }

    async fn agent_set_password(
        &self,
        host: &HostContext,
        uuid: &str,
        user: &str,
        password: &str,
    ) -> Result<(), EngineError> {
        fake!(agent_set_password)
    }

    async fn agent_exec(
        &self,
        host: &HostContext,
        uuid: &str,
        program: &str,
        args: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput, EngineError> {
        fake!(agent_exec)
    }

    async fn agent_write_file(
        &self,
        host: &HostContext,
        uuid: &str,
        path: &str,
        content: &[u8],
    ) -> Result<(), EngineError> {
        fake!(agent_write_file)
    }

    async fn agent_read_file(
        &self,
        host: &HostContext,
        uuid: &str,
        path: &str,
        max_bytes: usize,
    ) -> Result<Vec<u8>, EngineError> {
        fake!(agent_read_file)
    }

    async fn agent_interfaces(
        &self,
        host: &HostContext,
        uuid: &str,
    ) -> Result<Vec<GuestInterface>, EngineError> {
        fake!(agent_interfaces)
    }

    async fn snapshot_create(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
    ) -> Result<SnapshotInfo, EngineError> {
        fake!(snapshot_create)
    }

    async fn snapshot_list(
        &self,
        host: &HostContext,
        uuid: &str,
    ) -> Result<Vec<SnapshotInfo>, EngineError> {
        fake!(snapshot_list)
    }

    async fn snapshot_revert(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
    ) -> Result<(), EngineError> {
        fake!(snapshot_revert)
    }

    async fn snapshot_delete(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
    ) -> Result<(), EngineError> {
        fake!(snapshot_delete)
    }

    async fn backup_create(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
        progress: &dyn ProgressSink,
    ) -> Result<BackupInfo, EngineError> {
        fake!(backup_create)
    }

    async fn backup_list(
        &self,
        host: &HostContext,
        uuid: &str,
    ) -> Result<Vec<BackupInfo>, EngineError> {
        fake!(backup_list)
    }

    async fn backup_restore(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
        progress: &dyn ProgressSink,
    ) -> Result<(), EngineError> {
        fake!(backup_restore)
    }

    async fn backup_delete(
        &self,
        host: &HostContext,
        uuid: &str,
        name: &str,
    ) -> Result<(), EngineError> {
        fake!(backup_delete)
    }

    async fn reinstall(
        &self,
        host: &HostContext,
        spec: &VmSpec,
        progress: &dyn ProgressSink,
    ) -> Result<(), EngineError> {
        fake!(reinstall)
    }

    async fn iso_list(&self, host: &HostContext) -> Result<Vec<IsoFile>, EngineError> {
        fake!(iso_list)
    }

    async fn iso_set(
        &self,
        host: &HostContext,
        uuid: &str,
        iso: Option<&str>,
    ) -> Result<(), EngineError> {
        fake!(iso_set)
    }

    async fn nic_plug(
        &self,
        host: &HostContext,
        uuid: &str,
        nic: &NicSpec,
    ) -> Result<(), EngineError> {
        fake!(nic_plug)
    }

    async fn nic_unplug(
        &self,
        host: &HostContext,
        uuid: &str,
        mac: &str,
    ) -> Result<(), EngineError> {
        fake!(nic_unplug)
    }
}

#[derive(Default)]
struct Recorded(Mutex<Vec<(String, u8)>>);
impl ProgressSink for Recorded {
    fn report(&self, step: &str, percent: u8) {
        self.0.lock().unwrap().push((step.to_string(), percent));
    }
}

fn ctx() -> HostContext {
    HostContext {
        hs_name: "h1".into(),
        vms_dir: "/srv/vms".into(),
        images_dir: "/srv/images".into(),
        backups_dir: "/srv/backups".into(),
        isos_dir: "/srv/isos".into(),
    }
}

fn spec(uuid: &str) -> VmSpec {
    VmSpec {
        uuid: uuid.into(),
        cpu_num: 1,
        mem_mb: 64,
        hdd_mb: 16,
        os_image: "blank.qcow2".into(),
        nics: vec![],
        iso: None,
    }
}

/// An agent over the fake engine on a loopback port, and its token.
async fn agent(dir: &std::path::Path) -> (u16, EnrolmentToken) {
    let Loaded::Created(identity, token) = Identity::load_or_create(dir).unwrap() else {
        panic!("fresh directory");
    };
    let identity = Arc::new(identity);
    let listener = ironidc_agent::server::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = ironidc_agent::server::router(Arc::new(FakeEngine), identity.clone());
    tokio::spawn(ironidc_agent::server::serve(listener, identity, router));
    (port, token)
}

#[tokio::test]
async fn calls_cross_with_progress_typed_errors_secret_and_pin() {
    let dir = tempfile::tempdir().unwrap();
    let (port, token) = agent(dir.path()).await;
    let remote = RemoteEngine::new("h1", "127.0.0.1", port, &token).unwrap();

    let info = remote.info().await;
    assert!(info.enabled && info.is_remote, "{info:?}");
    assert_eq!(info.messages, vec!["from the fake".to_string()]);

    let seen = Recorded::default();
    remote.create_vm(&ctx(), &spec("vm1"), &seen).await.unwrap();
    assert_eq!(
        *seen.0.lock().unwrap(),
        vec![("clone".to_string(), 10), ("grow".to_string(), 60)]
    );
    let err = remote
        .create_vm(&ctx(), &spec("taken"), &Recorded::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::VmExists(ref u) if u == "taken"),
        "{err:?}"
    );

    assert_eq!(
        remote.state(&ctx(), "running").await.unwrap(),
        PowerState::Running
    );
    match remote.state(&ctx(), "gone").await.unwrap_err() {
        EngineError::Io { path, source } => {
            assert_eq!(path, "/srv/vms/gone");
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    let err = remote.scan(&ctx()).await.unwrap_err();
    assert!(
        matches!(err, EngineError::Unavailable(ref m) if m == "fake: scan"),
        "{err:?}"
    );

    // Another secret: 401, reported as such.
    let wrong_secret = EnrolmentToken {
        secret: "W".repeat(43),
        ..token.clone()
    };
    let e = RemoteEngine::new("h1", "127.0.0.1", port, &wrong_secret)
        .unwrap()
        .state(&ctx(), "running")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");

    // Another pin: the TLS handshake is refused by the client.
    let wrong_pin = EnrolmentToken {
        cert_sha256: [1; 32],
        ..token.clone()
    };
    let e = RemoteEngine::new("h1", "127.0.0.1", port, &wrong_pin)
        .unwrap()
        .state(&ctx(), "running")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not the enrolled one"), "{e}");

    // Nobody listening: unreachable, fast.
    drop(dir);
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = free.local_addr().unwrap().port();
    drop(free);
    let e = RemoteEngine::new("h1", "127.0.0.1", closed, &token)
        .unwrap()
        .state(&ctx(), "running")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("h1 unreachable"), "{e}");
}
