//! The engine as the tests drive it, and what QEMU and qemu-img say about
//! what it made.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use ironidc_core::engine::{Engine, HostContext, PowerAction, ProgressSink};
use ironidc_engine::qemu::qmp::QmpClient;
use ironidc_engine::qemu::{Accel, QemuEngine, QemuOptions};
use serde_json::{json, Value};

use super::LONG;

/// VM tests take this lock, so that they run one at a time: never more than
/// one guest of a test file, whatever the test threads.
pub static ONE_VM_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The engine with TCG forced, so that no test depends on a usable KVM.
pub fn tcg_engine() -> QemuEngine {
    QemuEngine::new(QemuOptions {
        accel: Some(Accel::Tcg),
        ..QemuOptions::default()
    })
}

/// `action` on VM `uuid`, which must succeed within `LONG`.
pub async fn power(engine: &QemuEngine, h: &HostContext, uuid: &str, action: PowerAction) {
    engine.power(h, uuid, action, LONG).await.unwrap();
}

/// Progress reports, in order.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<(String, u8)>>);

impl ProgressSink for Recorder {
    fn report(&self, step: &str, percent: u8) {
        self.0.lock().unwrap().push((step.to_string(), percent));
    }
}

impl Recorder {
    /// The percents reported for `step`.
    pub fn percents(&self, step: &str) -> Vec<u8> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| s == step)
            .map(|(_, p)| *p)
            .collect()
    }

    /// Reports seen, never going back, ending at 100.
    pub fn assert_complete(&self, step: &str) {
        let p = self.percents(step);
        assert!(!p.is_empty(), "no {step} progress");
        assert!(
            p.windows(2).all(|w| w[0] <= w[1]),
            "{step} went back: {p:?}"
        );
        assert_eq!(p.last(), Some(&100), "{p:?}");
        assert_eq!(p.iter().filter(|x| **x == 100).count(), 1, "{p:?}");
    }
}

/// One QMP command on a new connection to `socket`; it must succeed.
pub async fn qmp(socket: &Path, command: &str, args: Option<Value>) -> Value {
    let mut c = QmpClient::connect(socket, Duration::from_secs(10))
        .await
        .unwrap();
    c.execute(command, args).await.unwrap()
}

/// One HMP command line through QMP; its output.
pub async fn hmp(socket: &Path, line: &str) -> String {
    qmp(
        socket,
        "human-monitor-command",
        Some(json!({ "command-line": line })),
    )
    .await
    .as_str()
    .unwrap()
    .to_string()
}

/// `qemu-img ARGS IMAGE`, for a command with `--output=json`.
pub fn qemu_img_json(args: &[&str], image: &Path) -> Value {
    let out = Command::new("qemu-img")
        .args(args)
        .arg(image)
        .output()
        .unwrap();
    // `check` exits 0 only for a clean image: its JSON is read either way.
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "qemu-img {args:?}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `qemu-img info` of an image, also of a running VM's disk (`-U`).
pub fn qemu_img_info(image: &Path) -> Value {
    qemu_img_json(&["info", "-U", "--output=json"], image)
}
