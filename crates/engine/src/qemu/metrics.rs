//! Resource figures read from `/proc` and the filesystem: per VM (its QEMU
//! process and disk file) and for the host. Missing files give zeros, never
//! a panic: a sample is informative, not critical.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::linked_clone::MIB;

/// Interval over which host CPU usage is measured.
const HOST_CPU_INTERVAL: Duration = Duration::from_millis(200);

/// The CPU time of a QEMU process at one moment, to compute usage over the
/// interval between two samples of the same VM.
#[derive(Debug, Clone, Copy)]
struct CpuMark {
    pid: i32,
    ticks: u64,
    at: Instant,
}

/// Remembers the last CPU mark of each VM. The first sample of a process
/// reports its average since start; later ones the usage since the previous
/// sample, so sampling costs no sleep.
#[derive(Default)]
pub(crate) struct CpuTracker {
    marks: Mutex<HashMap<String, CpuMark>>,
}

impl CpuTracker {
    /// CPU usage in percent of the VM's `vcpus` (0..=100).
    pub fn usage(&self, uuid: &str, pid: i32, vcpus: u32) -> f64 {
        let Some(stat) = ProcStat::read(pid) else {
            return 0.0;
        };
        let now = Instant::now();
        let hz = clock_ticks_per_second();
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        let previous = marks.insert(
            uuid.to_string(),
            CpuMark {
                pid,
                ticks: stat.cpu_ticks,
                at: now,
            },
        );
        let (ticks, seconds) = match previous {
            Some(m) if m.pid == pid && now.duration_since(m.at) >= Duration::from_millis(50) => (
                stat.cpu_ticks.saturating_sub(m.ticks),
                now.duration_since(m.at).as_secs_f64(),
            ),
            _ => (stat.cpu_ticks, process_age_seconds(stat.start_ticks, hz)),
        };
        percent(ticks as f64 / hz, seconds * f64::from(vcpus.max(1)))
    }

    pub fn forget(&self, uuid: &str) {
        self.marks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uuid);
    }
}

/// The fields of `/proc/<pid>/stat` we use.
struct ProcStat {
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
    /// Start time after boot, in clock ticks.
    start_ticks: u64,
}

impl ProcStat {
    fn read(pid: i32) -> Option<Self> {
        Self::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }
    fn parse(text: &str) -> Option<Self> {
        // The command name (field 2) may contain spaces and parentheses; the
        // fields we want follow the last ')'. Field 3 (state) is index 0.
        let rest = &text[text.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
        Some(Self {
            cpu_ticks: field(14)? + field(15)?,
            start_ticks: field(22)?,
        })
    }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

fn process_age_seconds(start_ticks: u64, hz: f64) -> f64 {
    let uptime = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    (uptime - start_ticks as f64 / hz).max(0.0)
}

fn percent(part: f64, whole: f64) -> f64 {
    if whole <= 0.0 {
        return 0.0;
    }
    ((part / whole * 100.0).clamp(0.0, 100.0) * 10.0).round() / 10.0
}

/// Resident memory of a process in MiB (`VmRSS`).
pub(crate) fn process_rss_mb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| kib_field(&t, "VmRSS:"))
        .map(|kib| kib / 1024)
        .unwrap_or(0)
}

/// Bytes really allocated for a file (sparse and thin files count only what
/// they use), in MiB.
pub(crate) fn allocated_mb(path: &Path) -> u64 {
    std::fs::metadata(path)
        .map(|m| m.blocks() * 512 / MIB)
        .unwrap_or(0)
}

/// A `Key:   123 kB` line of /proc/meminfo or /proc/<pid>/status.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
}

/// Host CPU model and logical CPU count from /proc/cpuinfo.
pub(crate) fn host_cpu() -> (String, u64) {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let mut count = text
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count() as u64;
    if count == 0 {
        count = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(0);
    }
    (model, count)
}

/// Busy and total jiffies of all CPUs from the first line of /proc/stat.
fn host_cpu_times() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// Host CPU usage in percent, measured over a short interval.
pub(crate) async fn host_cpu_usage() -> f64 {
    let Some((busy0, total0)) = host_cpu_times() else {
        return 0.0;
    };
    tokio::time::sleep(HOST_CPU_INTERVAL).await;
    let Some((busy1, total1)) = host_cpu_times() else {
        return 0.0;
    };
    percent(
        busy1.saturating_sub(busy0) as f64,
        total1.saturating_sub(total0) as f64,
    )
}

/// Host memory (total, used) in MiB; used = total - available.
pub(crate) fn host_memory_mb() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = kib_field(&text, "MemTotal:").unwrap_or(0);
    let available = kib_field(&text, "MemAvailable:")
        .or_else(|| kib_field(&text, "MemFree:"))
        .unwrap_or(0);
    (total / 1024, total.saturating_sub(available) / 1024)
}

/// Size and used space (MiB) of the filesystem holding `path`, or of its
/// nearest existing ancestor when `path` does not exist yet.
pub(crate) fn filesystem_mb(path: &Path) -> (u64, u64) {
    let Some(existing) = path.ancestors().find(|p| p.exists()) else {
        return (0, 0);
    };
    let Ok(c_path) = CString::new(existing.as_os_str().as_bytes()) else {
        return (0, 0);
    };
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: c_path is a valid NUL-terminated string and st points to
    // writable memory of the right type; statvfs fills it on success.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return (0, 0);
    }
    // SAFETY: statvfs returned 0, so st is initialized.
    let st = unsafe { st.assume_init() };
    // The statvfs field types differ between targets; widen explicitly.
    #[allow(clippy::unnecessary_cast)]
    let (frsize, blocks, bfree) = (st.f_frsize as u64, st.f_blocks as u64, st.f_bfree as u64);
    let total = blocks * frsize;
    let free = bfree * frsize;
    (total / MIB, total.saturating_sub(free) / MIB)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_odd_names() {
        let line = "1234 (qemu (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 98765 1000 10 0";
        let s = ProcStat::parse(line).unwrap();
        assert_eq!(s.cpu_ticks, 300);
        assert_eq!(s.start_ticks, 98765);
        assert!(ProcStat::parse("garbage").is_none());
    }

    #[test]
    fn reads_own_process_and_host() {
        let pid = std::process::id() as i32;
        assert!(process_rss_mb(pid) > 0);
        let tracker = CpuTracker::default();
        let u = tracker.usage("self", pid, 1);
        assert!((0.0..=100.0).contains(&u));
        let (model, cpus) = host_cpu();
        assert!(cpus > 0, "cpu count; model {model:?}");
        let (total, used) = host_memory_mb();
        assert!(total > 0 && used <= total);
        let (fs_total, fs_used) = filesystem_mb(Path::new("/nonexistent/deeper/dir"));
        assert!(fs_total > 0 && fs_used <= fs_total);
        assert_eq!(process_rss_mb(-5), 0);
        assert_eq!(allocated_mb(Path::new("/nonexistent")), 0);
    }

    #[test]
    fn percent_is_bounded() {
        assert_eq!(percent(1.0, 0.0), 0.0);
        assert_eq!(percent(3.0, 2.0), 100.0);
        assert_eq!(percent(1.0, 4.0), 25.0);
    }
}

/// Cumulative counters of a live VM (see `VmCounters`).
pub(crate) async fn counters(
    _dir: &super::vm_dir::VmDir,
    _spec: &ironidc_core::engine::VmSpec,
    _pid: i32,
) -> Result<ironidc_core::engine::VmCounters, ironidc_core::engine::EngineError> {
    Err(ironidc_core::engine::EngineError::Unavailable(
        "not implemented yet".into(),
    ))
}

/// Load, uptime, storage paths and sensors of this machine (see `HostDetails`).
pub(crate) async fn host_details(
    _host: &ironidc_core::engine::HostContext,
) -> Result<ironidc_core::engine::HostDetails, ironidc_core::engine::EngineError> {
    Err(ironidc_core::engine::EngineError::Unavailable(
        "not implemented yet".into(),
    ))
}
