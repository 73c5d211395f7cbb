//! Choosing the accelerator: KVM when it really runs guests, TCG otherwise.
//!
//! `/dev/kvm` existing (or even opening) does not prove that KVM works: on
//! some hosts (nested virtualization) it opens but guests hang or QEMU aborts.
//! So we boot a one-sector guest under KVM with the exact machine and CPU
//! model our VMs use, and trust KVM only if that guest reports back through
//! `isa-debug-exit` in time.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::command_line::MACHINE;

/// Environment variable that forces an accelerator (`kvm` or `tcg`) and so
/// skips the probe.
pub const ACCEL_ENV: &str = "IRONIDC_ACCEL";

/// How long the KVM probe guest may take before KVM is declared unusable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The I/O port of the probe's `isa-debug-exit` device.
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// QEMU exits with `(value << 1) | 1` when the guest writes `value` to the
/// debug-exit port; the probe writes 1.
const PROBE_EXIT_STATUS: i32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg => "tcg",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "kvm" => Some(Self::Kvm),
            "tcg" => Some(Self::Tcg),
            _ => None,
        }
    }
    /// The `-cpu` model: the host CPU under KVM; under TCG `max`, every
    /// feature TCG can emulate.
    pub fn cpu_model(self) -> &'static str {
        match self {
            Self::Kvm => "host",
            Self::Tcg => "max",
        }
    }
}

/// The accelerator in use and why it was chosen (shown in `EngineInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelChoice {
    pub accel: Accel,
    pub reason: String,
}

/// Decide the accelerator: `forced` (from the options) wins, then the
/// environment variable, then the KVM probe.
pub async fn choose(qemu: &Path, forced: Option<Accel>) -> AccelChoice {
    if let Some(accel) = forced {
        return AccelChoice {
            accel,
            reason: format!("{} forced by the engine options", accel.as_str()),
        };
    }
    if let Ok(value) = std::env::var(ACCEL_ENV) {
        match Accel::parse(&value) {
            Some(accel) => {
                return AccelChoice {
                    accel,
                    reason: format!("{} forced by {ACCEL_ENV}", accel.as_str()),
                };
            }
            None => tracing::warn!(value, "ignoring {ACCEL_ENV}: expected kvm or tcg"),
        }
    }
    probe_kvm(qemu, PROBE_TIMEOUT).await
}

/// Boot the probe sector under KVM and see whether it reports back in time.
pub async fn probe_kvm(qemu: &Path, timeout: Duration) -> AccelChoice {
    let tcg = |reason: String| {
        tracing::info!(%reason, "using TCG");
        AccelChoice {
            accel: Accel::Tcg,
            reason,
        }
    };
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return tcg(format!("/dev/kvm is not usable ({e}); using TCG"));
    }
    let image = probe_image_path();
    if let Err(e) = tokio::fs::write(&image, probe_boot_sector()).await {
        return tcg(format!(
            "cannot write the KVM probe image {}: {e}; using TCG",
            image.display()
        ));
    }
    let started = Instant::now();
    let outcome = run_probe(qemu, &image, timeout).await;
    let _ = tokio::fs::remove_file(&image).await;
    match outcome {
        ProbeOutcome::Passed => {
            let reason = format!(
                "KVM probe guest ran in {} ms; using KVM",
                started.elapsed().as_millis()
            );
            tracing::info!(%reason, "using KVM");
            AccelChoice {
                accel: Accel::Kvm,
                reason,
            }
        }
        ProbeOutcome::TimedOut => tcg(format!(
            "KVM probe timed out after {} s; using TCG",
            timeout.as_secs_f64()
        )),
        ProbeOutcome::Failed(why) => tcg(format!("KVM probe failed ({why}); using TCG")),
    }
}

enum ProbeOutcome {
    Passed,
    TimedOut,
    Failed(String),
}

async fn run_probe(qemu: &Path, image: &Path, timeout: Duration) -> ProbeOutcome {
    let mut drive = std::ffi::OsString::from("file=");
    drive.push(super::command_line::escape_opt(image.as_os_str()));
    drive.push(",format=raw,if=virtio");
    let mut cmd = Command::new(qemu);
    cmd.args(["-no-user-config", "-nodefaults", "-display", "none"])
        .args([
            "-machine",
            MACHINE,
            "-accel",
            "kvm",
            "-cpu",
            Accel::Kvm.cpu_model(),
            "-m",
            "32M",
        ])
        .args([
            "-device",
            &format!("isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04"),
        ])
        .arg("-drive")
        .arg(drive)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return ProbeOutcome::Failed(format!("cannot run {}: {e}", qemu.display())),
    };
    // Read stderr concurrently so a chatty QEMU never blocks on a full pipe.
    let stderr = child.stderr.take().map(|mut pipe| {
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf).await;
            buf
        })
    });
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return ProbeOutcome::Failed(format!("waiting for qemu: {e}")),
        Err(_) => {
            // A hung KVM guest: kill it and reap it so no probe is left behind.
            let _ = child.kill().await;
            return ProbeOutcome::TimedOut;
        }
    };
    if status.code() == Some(PROBE_EXIT_STATUS) {
        return ProbeOutcome::Passed;
    }
    let text = match stderr {
        Some(task) => task
            .await
            .map(|b| super::exec::stderr_text(&b))
            .unwrap_or_default(),
        None => String::new(),
    };
    let last_line = text.lines().last().unwrap_or("").to_string();
    ProbeOutcome::Failed(if last_line.is_empty() {
        status.to_string()
    } else {
        format!("{status}: {last_line}")
    })
}

/// A unique temporary file for the probe sector.
fn probe_image_path() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "ironidc-kvm-probe-{}-{nanos}.img",
        std::process::id()
    ))
}

/// A 512-byte MBR boot sector: `mov al,1; out 0xf4,al; hlt` — the guest
/// tells `isa-debug-exit` "1", which makes QEMU exit with status 3. The `hlt`
/// only matters if the device is missing.
pub fn probe_boot_sector() -> [u8; 512] {
    let mut sector = [0u8; 512];
    // DEBUG_EXIT_PORT fits in the 8-bit immediate of `out imm8, al`.
    let code = [0xB0, 0x01, 0xE6, DEBUG_EXIT_PORT as u8, 0xF4];
    sector[..code.len()].copy_from_slice(&code);
    sector[510] = 0x55;
    sector[511] = 0xAA;
    sector
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn boot_sector_bytes() {
        let s = probe_boot_sector();
        assert_eq!(s.len(), 512);
        assert_eq!(&s[..5], &[0xB0, 0x01, 0xE6, 0xF4, 0xF4]);
        assert!(s[5..510].iter().all(|b| *b == 0));
        assert_eq!(&s[510..], &[0x55, 0xAA]);
    }

    #[test]
    fn parses_accel_names() {
        assert_eq!(Accel::parse("KVM"), Some(Accel::Kvm));
        assert_eq!(Accel::parse(" tcg\n"), Some(Accel::Tcg));
        assert_eq!(Accel::parse("hvf"), None);
    }

    #[tokio::test]
    async fn forced_accel_skips_the_probe() {
        let choice = choose(Path::new("/nonexistent/qemu"), Some(Accel::Tcg)).await;
        assert_eq!(choice.accel, Accel::Tcg);
        assert!(choice.reason.contains("forced"));
    }

    #[tokio::test]
    async fn a_hanging_probe_times_out_and_is_killed() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        // A "qemu" that hangs like a KVM guest here does, and leaves a mark
        // with its pid so we can check it was killed.
        let fake = tmp.path().join("fake-qemu");
        let pidfile = tmp.path().join("pid");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\necho $$ > {}\nexec sleep 30\n",
                pidfile.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let started = Instant::now();
        let choice = probe_kvm(&fake, Duration::from_millis(500)).await;
        assert_eq!(choice.accel, Accel::Tcg);
        if choice.reason.contains("/dev/kvm") {
            eprintln!("no usable /dev/kvm here: the probe did not run");
            return;
        }
        assert!(choice.reason.contains("timed out"), "{}", choice.reason);
        assert!(started.elapsed() < Duration::from_secs(3));
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        assert!(
            !Path::new(&format!("/proc/{}", pid.trim())).exists(),
            "hung probe left running"
        );
    }

    #[tokio::test]
    async fn missing_qemu_falls_back_to_tcg() {
        let choice = probe_kvm(Path::new("/nonexistent/qemu"), Duration::from_secs(1)).await;
        assert_eq!(choice.accel, Accel::Tcg);
    }
}
