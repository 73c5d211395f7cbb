//! The QEMU process of a VM: launching it detached from the controller,
//! finding it again from its pidfile, and killing it.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ironidc_core::engine::EngineError;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::exec;

/// How often we look whether a process is gone.
const POLL: Duration = Duration::from_millis(100);

/// Start QEMU with `-daemonize` in `args` and wait until the foreground
/// process exits, which QEMU does once the VM is initialized (or failed).
///
/// The VM must outlive the controller: `-daemonize` double-forks and
/// `setsid()`s, and we also put the launcher in its own process group so a
/// Ctrl-C aimed at the controller never reaches it. Only the launcher's
/// stderr is captured: the daemon points fds 0-2 at /dev/null before it
/// releases the launcher, so no pipe of ours stays open in the VM process.
pub(crate) async fn launch(
    qemu: &Path,
    args: &[OsString],
    timeout: Duration,
) -> Result<(), EngineError> {
    let mut cmd = Command::new(qemu);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| exec::not_started(qemu, &e))?;
    let stderr = child.stderr.take().map(|mut pipe| {
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf).await;
            buf
        })
    });
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(res) => res.map_err(|e| EngineError::io(qemu.display().to_string(), e))?,
        Err(_) => {
            let _ = child.kill().await;
            return Err(EngineError::Command {
                program: exec::program_name(qemu),
                status: format!("did not finish starting within {} s", timeout.as_secs()),
                stderr: String::new(),
            });
        }
    };
    if status.success() {
        // Warnings (e.g. unsupported CPU features) are worth a log line, but
        // we never wait on the pipe for long.
        if let Some(task) = stderr {
            if let Ok(Ok(bytes)) = tokio::time::timeout(Duration::from_secs(1), task).await {
                let text = exec::stderr_text(&bytes);
                if !text.is_empty() {
                    tracing::warn!(qemu = %qemu.display(), stderr = %text, "qemu printed warnings at start");
                }
            }
        }
        return Ok(());
    }
    let text = match stderr {
        Some(task) => match tokio::time::timeout(Duration::from_secs(2), task).await {
            Ok(Ok(bytes)) => exec::stderr_text(&bytes),
            _ => String::new(),
        },
        None => String::new(),
    };
    Err(EngineError::Command {
        program: exec::program_name(qemu),
        status: status.to_string(),
        stderr: text,
    })
}

/// The pid of the live QEMU of VM `uuid`, from its pidfile. A pid is only
/// trusted when `/proc/<pid>/cmdline` shows `-name guest=<uuid>`: after a
/// host crash the pidfile may name a pid now reused by something else, and we
/// must neither report that as our VM nor signal it.
pub(crate) fn live_pid(pidfile: &Path, uuid: &str) -> Option<i32> {
    let text = std::fs::read_to_string(pidfile).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    if pid <= 1 {
        return None;
    }
    is_vm_process(pid, uuid).then_some(pid)
}

/// Whether process `pid` is the QEMU of `uuid`. A zombie has an empty
/// cmdline and so does not count as live.
pub(crate) fn is_vm_process(pid: i32, uuid: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| cmdline_names_guest(&c, uuid))
}

/// The NUL-separated arguments of a live process.
pub(crate) fn cmdline_args(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            split_cmdline(&c)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn split_cmdline(cmdline: &[u8]) -> impl Iterator<Item = &[u8]> {
    cmdline.split(|b| *b == 0).filter(|a| !a.is_empty())
}

/// `-name guest=<uuid>` (possibly followed by `,more=options`) in a cmdline.
pub(crate) fn cmdline_names_guest(cmdline: &[u8], uuid: &str) -> bool {
    let want = format!("guest={uuid}");
    let want = want.as_bytes();
    let args: Vec<&[u8]> = split_cmdline(cmdline).collect();
    args.windows(2).any(|w| {
        w[0] == b"-name"
            && (w[1] == want || (w[1].starts_with(want) && w[1].get(want.len()) == Some(&b',')))
    })
}

/// Poll until the VM's process is gone or `timeout` passes; true if gone.
pub(crate) async fn wait_gone(pidfile: &Path, uuid: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if live_pid(pidfile, uuid).is_none() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// SIGTERM (QEMU then exits cleanly), and SIGKILL if it is still there after
/// `grace`. Each signal goes only to a pid verified to be this VM's QEMU.
pub(crate) async fn kill(pidfile: &Path, uuid: &str, grace: Duration) -> Result<(), EngineError> {
    for (signal, wait) in [
        (libc::SIGTERM, grace),
        (libc::SIGKILL, Duration::from_secs(5)),
    ] {
        let Some(pid) = live_pid(pidfile, uuid) else {
            return Ok(());
        };
        tracing::info!(uuid, pid, signal, "signalling qemu");
        // SAFETY: kill(2) has no memory-safety preconditions; the pid was
        // just checked to be this VM's QEMU.
        unsafe {
            libc::kill(pid, signal);
        }
        if wait_gone(pidfile, uuid, wait).await {
            return Ok(());
        }
    }
    Err(EngineError::Command {
        program: "kill".into(),
        status: "process still alive after SIGKILL".into(),
        stderr: format!("qemu of {uuid} did not exit"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_the_guest_name_exactly() {
        let c = b"qemu-system-x86_64\0-name\0guest=vm1\0-m\0M128\0";
        assert!(cmdline_names_guest(c, "vm1"));
        assert!(!cmdline_names_guest(c, "vm"));
        assert!(!cmdline_names_guest(b"qemu\0-name\0guest=vm10\0", "vm1"));
        assert!(cmdline_names_guest(
            b"qemu\0-name\0guest=vm1,debug-threads=on\0",
            "vm1"
        ));
        // Not as the value of -name: e.g. a shell that merely mentions it.
        assert!(!cmdline_names_guest(b"grep\0guest=vm1\0", "vm1"));
        assert!(!cmdline_names_guest(b"", "vm1"));
    }

    #[tokio::test]
    async fn a_reused_pid_is_not_our_vm() {
        let tmp = tempfile::tempdir().unwrap();
        let pidfile = tmp.path().join("qemu.pid");
        // A live process that is not QEMU of vm1 (think: pid reused after a
        // host reboot), and one whose cmdline does name it.
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        // `read` is a shell builtin: no grandchild is left behind when sh dies.
        let mut named = std::process::Command::new("sh")
            .args(["-c", "read line", "sh", "-name", "guest=vm1"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();

        std::fs::write(&pidfile, format!("{}\n", other.id())).unwrap();
        assert_eq!(live_pid(&pidfile, "vm1"), None);
        // kill() must not signal a process that is not ours.
        kill(&pidfile, "vm1", Duration::from_millis(100))
            .await
            .unwrap();
        assert!(
            other.try_wait().unwrap().is_none(),
            "a foreign process was killed"
        );

        std::fs::write(&pidfile, format!("{}\n", named.id())).unwrap();
        // Right after fork the child still shows our cmdline until it execs sh.
        let deadline = Instant::now() + Duration::from_secs(5);
        while live_pid(&pidfile, "vm1").is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(live_pid(&pidfile, "vm1"), Some(named.id() as i32));
        assert_eq!(live_pid(&pidfile, "vm2"), None);

        // Our "VM" is killed; afterwards its zombie does not count as live.
        kill(&pidfile, "vm1", Duration::from_secs(2)).await.unwrap();
        assert_eq!(live_pid(&pidfile, "vm1"), None);
        named.wait().unwrap();

        other.kill().unwrap();
        other.wait().unwrap();
        std::fs::write(&pidfile, "garbage").unwrap();
        assert_eq!(live_pid(&pidfile, "vm1"), None);
        assert_eq!(live_pid(&tmp.path().join("missing.pid"), "vm1"), None);
    }
}
