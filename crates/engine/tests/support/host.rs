//! A host in a temporary directory, and the VM definitions the tests create
//! on it.

use std::path::PathBuf;

use ironidc_core::engine::{HostContext, NicSpec, VmSpec};

/// The MAC of the one NIC of `spec`.
pub const MAC: &str = "52:54:00:12:34:56";

/// A host in a temporary directory; only `images_dir` exists at first.
/// Dropping it SIGKILLs every QEMU still running from its VM directories, so
/// a failed assertion leaves no guest behind.
pub struct TestHost {
    pub tmp: tempfile::TempDir,
    pub ctx: HostContext,
}

impl TestHost {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = HostContext {
            hs_name: "test-host".into(),
            vms_dir: tmp.path().join("vms"),
            images_dir: tmp.path().join("images"),
            backups_dir: tmp.path().join("backups"),
            isos_dir: tmp.path().join("isos"),
        };
        std::fs::create_dir_all(&ctx.images_dir).unwrap();
        Self { tmp, ctx }
    }

    /// The path of base image `name`.
    pub fn image(&self, name: &str) -> PathBuf {
        self.ctx.images_dir.join(name)
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.ctx.vms_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path().join("qemu.pid")) else {
                continue;
            };
            let Ok(pid) = text.trim().parse::<i32>() else {
                continue;
            };
            let uuid = entry.file_name().to_string_lossy().into_owned();
            if is_qemu_of(pid, &uuid) {
                eprintln!("cleanup: killing leftover qemu {pid} of {uuid}");
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// Whether `pid` is the QEMU of VM `uuid` (and not a process that reused the
/// pid).
pub fn is_qemu_of(pid: i32, uuid: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            c.split(|b| *b == 0)
                .any(|a| a == format!("guest={uuid}").as_bytes())
        })
        .unwrap_or(false)
}

/// One vCPU, 128 MiB, a linked clone of `image` of `hdd_mb`, and one NIC
/// (`MAC`) on user-mode networking: no tap, so the NIC counts nothing.
pub fn spec(uuid: &str, image: &str, hdd_mb: u64) -> VmSpec {
    VmSpec {
        uuid: uuid.into(),
        cpu_num: 1,
        mem_mb: 128,
        hdd_mb,
        os_image: image.into(),
        nics: vec![nic("ethernet0", MAC, None)],
        iso: None,
    }
}

/// A NIC on `bridge` (a tap), or on user-mode networking when `None`.
pub fn nic(name: &str, mac: &str, bridge: Option<&str>) -> NicSpec {
    NicSpec {
        name: name.into(),
        mac: mac.into(),
        bridge: bridge.map(str::to_string),
    }
}
