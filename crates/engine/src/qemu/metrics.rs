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

use ironidc_core::engine::{
    EngineError, HostContext, HostDetails, NicSpec, StorageUsage, VmCounters, VmSpec,
};
use serde_json::Value;

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
    let model = cpu_model(&text);
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
    path.ancestors()
        .find(|p| p.exists())
        .and_then(statvfs_mb)
        .unwrap_or((0, 0))
}

/// Size and used space (MiB) of the filesystem holding `path`, which must
/// exist.
fn statvfs_mb(path: &Path) -> Option<(u64, u64)> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: c_path is a valid NUL-terminated string and st points to
    // writable memory of the right type; statvfs fills it on success.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so st is initialized.
    let st = unsafe { st.assume_init() };
    // The statvfs field types differ between targets; widen explicitly.
    #[allow(clippy::unnecessary_cast)]
    let (frsize, blocks, bfree) = (st.f_frsize as u64, st.f_blocks as u64, st.f_bfree as u64);
    let total = blocks * frsize;
    let free = bfree * frsize;
    Some((total / MIB, total.saturating_sub(free) / MIB))
}

// ---- VM counters ---------------------------------------------------------

/// How long the counters may wait for the QMP monitor (another operation
/// may hold it: QEMU serves one client at a time).
const QMP_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the kernel lists network interfaces.
const SYS_CLASS_NET: &str = "/sys/class/net";

/// Cumulative counters of a live VM (see `VmCounters`). Only a vanished
/// process is an error; a figure that cannot be read is 0.
pub(crate) async fn counters(
    dir: &super::vm_dir::VmDir,
    spec: &VmSpec,
    pid: i32,
) -> Result<VmCounters, EngineError> {
    let Some(stat) = ProcStat::read(pid) else {
        return Err(EngineError::InvalidState {
            state: "stopped",
            action: "reading counters",
        });
    };
    let (disk_read_bytes, disk_write_bytes) = disk_bytes(&dir.qmp_socket()).await;
    let (net_rx_bytes, net_tx_bytes) = nic_bytes(Path::new(SYS_CLASS_NET), &spec.nics);
    Ok(VmCounters {
        cpu_time_ms: ticks_to_ms(stat.cpu_ticks, clock_ticks_per_second()),
        disk_read_bytes,
        disk_write_bytes,
        net_rx_bytes,
        net_tx_bytes,
    })
}

fn ticks_to_ms(ticks: u64, hz: f64) -> u64 {
    (ticks as f64 * 1000.0 / hz).round() as u64
}

/// Bytes read and written by the guest's block devices, from QMP.
async fn disk_bytes(qmp_socket: &Path) -> (u64, u64) {
    let stats = async {
        let mut qmp = super::qmp::QmpClient::connect(qmp_socket, QMP_TIMEOUT).await?;
        qmp.execute("query-blockstats", None).await
    };
    match stats.await {
        Ok(v) => sum_blockstats(&v),
        Err(e) => {
            tracing::debug!(socket = %qmp_socket.display(), "disk counters unavailable: {e}");
            (0, 0)
        }
    }
}

/// Sum `rd_bytes`/`wr_bytes` over the devices of a `query-blockstats` reply
/// (system disk `disk0`, seed, CD-ROM). Only each entry's own `stats` count:
/// its `parent`/`backing` are lower layers of the same I/O (the file under
/// the qcow2 node), and adding them would count bytes twice.
fn sum_blockstats(reply: &Value) -> (u64, u64) {
    let Some(devices) = reply.as_array() else {
        return (0, 0);
    };
    devices.iter().fold((0, 0), |(rd, wr), dev| {
        let field = |name: &str| dev["stats"][name].as_u64().unwrap_or(0);
        (
            rd.saturating_add(field("rd_bytes")),
            wr.saturating_add(field("wr_bytes")),
        )
    })
}

/// Bytes the guest received and sent over its bridged NICs, from their
/// taps' statistics. The tap is the host end, so its directions are the
/// guest's reversed: what the tap transmits, the guest receives. NICs on
/// user-mode networking have no tap and count 0.
fn nic_bytes(sys_class_net: &Path, nics: &[NicSpec]) -> (u64, u64) {
    nics.iter()
        .filter_map(super::command_line::tap_of)
        .fold((0, 0), |(rx, tx), tap| {
            let stats = sys_class_net.join(&tap).join("statistics");
            (
                rx.saturating_add(read_u64(&stats.join("tx_bytes")).unwrap_or(0)),
                tx.saturating_add(read_u64(&stats.join("rx_bytes")).unwrap_or(0)),
            )
        })
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

// ---- host details --------------------------------------------------------

/// Where the kernel lists thermal zones and hardware monitors.
const SYS_CLASS: &str = "/sys/class";

/// Load, uptime, storage paths and sensors of this machine (see
/// `HostDetails`). Never fails: what cannot be read is `None` or empty.
pub(crate) async fn host_details(host: &HostContext) -> Result<HostDetails, EngineError> {
    let host = host.clone();
    // statvfs on a hung network mount blocks; keep it off the runtime.
    match tokio::task::spawn_blocking(move || gather_host_details(&host, Path::new(SYS_CLASS)))
        .await
    {
        Ok(details) => Ok(details),
        Err(e) => {
            tracing::warn!("host details: {e}");
            Ok(HostDetails::default())
        }
    }
}

fn gather_host_details(host: &HostContext, sys_class: &Path) -> HostDetails {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let (cpu_model, processors) = host_cpu();
    let cpu_count = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(processors);
    let load = parse_loadavg(&read("/proc/loadavg"));
    HostDetails {
        cpu_model,
        cpu_count,
        load_1: load.map(|l| l.0),
        load_5: load.map(|l| l.1),
        load_15: load.map(|l| l.2),
        uptime_secs: parse_uptime(&read("/proc/uptime")),
        kernel: non_empty(&read("/proc/sys/kernel/osrelease")),
        storage: storage_usage(host),
        temperatures: temperatures(sys_class),
    }
}

/// The CPU model from /proc/cpuinfo: `model name` (x86), else `vendor_id`,
/// else the architecture, so the figure is never blank.
fn cpu_model(cpuinfo: &str) -> String {
    let field = |key: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key)
                .then(|| v.trim())
                .filter(|v| !v.is_empty())
        })
    };
    field("model name")
        .or_else(|| field("vendor_id"))
        .unwrap_or(std::env::consts::ARCH)
        .to_string()
}

/// The 1, 5 and 15 minute load averages of /proc/loadavg.
fn parse_loadavg(text: &str) -> Option<(f64, f64, f64)> {
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    let (a, b, c) = (it.next()??, it.next()??, it.next()??);
    [a, b, c]
        .iter()
        .all(|v| v.is_finite() && *v >= 0.0)
        .then_some((a, b, c))
}

/// Whole seconds since boot from /proc/uptime.
fn parse_uptime(text: &str) -> Option<u64> {
    let secs = text.split_whitespace().next()?.parse::<f64>().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some(secs as u64)
}

fn non_empty(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// One entry per storage path of the host, with its filesystem's figures
/// when the path exists.
fn storage_usage(host: &HostContext) -> Vec<StorageUsage> {
    [
        ("vms", &host.vms_dir),
        ("images", &host.images_dir),
        ("backups", &host.backups_dir),
        ("isos", &host.isos_dir),
    ]
    .into_iter()
    .map(|(role, path)| {
        let figures = path.exists().then(|| statvfs_mb(path)).flatten();
        StorageUsage {
            role: role.to_string(),
            path: path.display().to_string(),
            total_mb: figures.map(|f| f.0),
            used_mb: figures.map(|f| f.1),
        }
    })
    .collect()
}

/// Temperatures of the thermal zones (named by their type) and of the
/// hardware monitors (named `<chip> <label>`), in °C.
fn temperatures(sys_class: &Path) -> Vec<(String, f64)> {
    let mut found = Vec::new();
    for zone in sorted_entries(&sys_class.join("thermal"), "thermal_zone") {
        let Some(celsius) = read_celsius(&zone.join("temp")) else {
            continue;
        };
        let name = read_trimmed(&zone.join("type")).unwrap_or_else(|| file_name(&zone));
        found.push((name, celsius));
    }
    for chip in sorted_entries(&sys_class.join("hwmon"), "hwmon") {
        let chip_name = read_trimmed(&chip.join("name")).unwrap_or_else(|| file_name(&chip));
        for input in sorted_entries(&chip, "temp") {
            let Some(sensor) = file_name(&input).strip_suffix("_input").map(str::to_string) else {
                continue;
            };
            let Some(celsius) = read_celsius(&input) else {
                continue;
            };
            let label = read_trimmed(&chip.join(format!("{sensor}_label"))).unwrap_or(sensor);
            found.push((format!("{chip_name} {label}"), celsius));
        }
    }
    unique_names(found)
}

/// Several zones or chips often share a name (two `acpitz` zones, one
/// `nvme` chip per drive); number the repeats so each name is one sensor.
fn unique_names(sensors: Vec<(String, f64)>) -> Vec<(String, f64)> {
    let mut seen: HashMap<String, u32> = HashMap::new();
    sensors
        .into_iter()
        .map(|(name, value)| {
            let n = seen.entry(name.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                (name, value)
            } else {
                (format!("{name} #{n}"), value)
            }
        })
        .collect()
}

/// Entries of `dir` whose name starts with `prefix`, in natural order
/// (`thermal_zone2` before `thermal_zone10`); none when `dir` is unreadable.
fn sorted_entries(dir: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| file_name(p).starts_with(prefix))
        .collect();
    paths.sort_by_key(|p| {
        let name = file_name(p);
        (name.len(), name)
    });
    paths
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read_trimmed(path: &Path) -> Option<String> {
    non_empty(&std::fs::read_to_string(path).ok()?)
}

fn read_celsius(path: &Path) -> Option<f64> {
    parse_millidegrees(&std::fs::read_to_string(path).ok()?)
}

/// A sysfs temperature (millidegrees Celsius) in °C, rounded to 0.1.
/// Values no real sensor reports (disconnected probes read e.g. -273 °C or
/// 255 °C) are dropped rather than shown.
fn parse_millidegrees(text: &str) -> Option<f64> {
    let milli = text.trim().parse::<i64>().ok()?;
    let celsius = milli as f64 / 1000.0;
    (-60.0..=200.0)
        .contains(&celsius)
        .then(|| (celsius * 10.0).round() / 10.0)
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

    #[test]
    fn cpu_model_falls_back_to_vendor_then_arch() {
        let intel = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz\n";
        assert_eq!(
            cpu_model(intel),
            "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz"
        );
        assert_eq!(
            cpu_model("vendor_id : AuthenticAMD\nmodel name :\n"),
            "AuthenticAMD"
        );
        assert_eq!(cpu_model(""), std::env::consts::ARCH);
        assert_eq!(cpu_model("\u{0}garbage::\n:"), std::env::consts::ARCH);
    }

    #[test]
    fn parses_loadavg_and_uptime() {
        assert_eq!(
            parse_loadavg("0.52 1.05 2.00 3/421 12345\n"),
            Some((0.52, 1.05, 2.0))
        );
        assert_eq!(parse_loadavg(""), None);
        assert_eq!(parse_loadavg("0.5 1.0"), None);
        assert_eq!(parse_loadavg("a b c"), None);
        assert_eq!(parse_loadavg("NaN 1 1"), None);
        assert_eq!(parse_uptime("350735.47 234388.90\n"), Some(350735));
        assert_eq!(parse_uptime(""), None);
        assert_eq!(parse_uptime("-1 2"), None);
        assert_eq!(parse_uptime("up"), None);
        assert_eq!(non_empty("6.1.0-18-amd64\n"), Some("6.1.0-18-amd64".into()));
        assert_eq!(non_empty(" \n"), None);
    }

    #[test]
    fn parses_millidegrees() {
        assert_eq!(parse_millidegrees("45000\n"), Some(45.0));
        assert_eq!(parse_millidegrees("27850"), Some(27.9));
        assert_eq!(parse_millidegrees("-5000"), Some(-5.0));
        assert_eq!(parse_millidegrees("-273150"), None);
        assert_eq!(parse_millidegrees("255000"), None);
        assert_eq!(parse_millidegrees(""), None);
        assert_eq!(parse_millidegrees("hot"), None);
    }

    #[test]
    fn sums_blockstats_of_devices_only() {
        let reply = serde_json::json!([
            {"device": "", "node-name": "disk0", "qdev": "/machine/peripheral/virtio-disk0/virtio-backend",
             "stats": {"rd_bytes": 1000, "wr_bytes": 24},
             "parent": {"node-name": "#block123", "stats": {"rd_bytes": 1000, "wr_bytes": 24}}},
            {"device": "", "node-name": "seed0", "stats": {"rd_bytes": 512, "wr_bytes": 0}},
            {"device": "", "qdev": "cd0", "stats": {}}
        ]);
        assert_eq!(sum_blockstats(&reply), (1512, 24));
        assert_eq!(sum_blockstats(&serde_json::json!({})), (0, 0));
        assert_eq!(
            sum_blockstats(&serde_json::json!([{"stats": {"rd_bytes": "x"}}])),
            (0, 0)
        );
        assert_eq!(ticks_to_ms(250, 100.0), 2500);
        assert_eq!(ticks_to_ms(0, 100.0), 0);
    }

    #[test]
    fn nic_bytes_reverse_the_tap_directions_and_skip_user_mode() {
        let sys = tempfile::tempdir().unwrap();
        let bridged = NicSpec {
            name: "ethernet0".into(),
            mac: "52:54:00:12:34:56".into(),
            bridge: Some("br0".into()),
        };
        let tap = super::super::command_line::tap_of(&bridged).unwrap();
        let stats = sys.path().join(&tap).join("statistics");
        std::fs::create_dir_all(&stats).unwrap();
        std::fs::write(stats.join("tx_bytes"), "7000\n").unwrap();
        std::fs::write(stats.join("rx_bytes"), "300\n").unwrap();
        let user_mode = NicSpec {
            name: "nic1".into(),
            mac: "52:54:00:00:00:01".into(),
            bridge: None,
        };
        // A bridged NIC whose tap is gone (VM stopping) counts 0.
        let gone = NicSpec {
            name: "nic2".into(),
            mac: "52:54:00:00:00:02".into(),
            bridge: Some("br0".into()),
        };
        assert_eq!(
            nic_bytes(sys.path(), &[bridged, user_mode, gone]),
            (7000, 300)
        );
        assert_eq!(nic_bytes(sys.path(), &[]), (0, 0));
    }

    #[test]
    fn reads_thermal_zones_and_hwmon() {
        let sys = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let p = sys.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write("thermal/thermal_zone0/type", "acpitz\n");
        write("thermal/thermal_zone0/temp", "41000\n");
        write("thermal/thermal_zone10/type", "acpitz\n");
        write("thermal/thermal_zone10/temp", "43500\n");
        write("thermal/thermal_zone2/type", "x86_pkg_temp\n");
        write("thermal/thermal_zone2/temp", "52000\n");
        write("thermal/thermal_zone3/type", "broken\n");
        write("thermal/thermal_zone3/temp", "garbage\n");
        write("thermal/cooling_device0/type", "Processor\n");
        write("hwmon/hwmon1/name", "coretemp\n");
        write("hwmon/hwmon1/temp1_input", "50000\n");
        write("hwmon/hwmon1/temp1_label", "Package id 0\n");
        write("hwmon/hwmon1/temp2_input", "48000\n");
        write("hwmon/hwmon1/temp2_crit", "100000\n");
        write("hwmon/hwmon0/name", "nvme\n");
        write("hwmon/hwmon0/temp1_input", "-273150\n");
        let temps = temperatures(sys.path());
        assert_eq!(
            temps,
            vec![
                ("acpitz".to_string(), 41.0),
                ("x86_pkg_temp".to_string(), 52.0),
                ("acpitz #2".to_string(), 43.5),
                ("coretemp Package id 0".to_string(), 50.0),
                ("coretemp temp2".to_string(), 48.0),
            ]
        );
        assert!(temperatures(&sys.path().join("missing")).is_empty());
    }

    #[test]
    fn storage_entries_for_each_role() {
        let tmp = tempfile::tempdir().unwrap();
        let host = HostContext {
            hs_name: "h".into(),
            vms_dir: tmp.path().to_path_buf(),
            images_dir: tmp.path().join("missing"),
            backups_dir: tmp.path().to_path_buf(),
            isos_dir: tmp.path().join("missing/isos"),
        };
        let storage = storage_usage(&host);
        let roles: Vec<&str> = storage.iter().map(|s| s.role.as_str()).collect();
        assert_eq!(roles, ["vms", "images", "backups", "isos"]);
        let vms = &storage[0];
        assert!(vms.total_mb.unwrap() > 0 && vms.used_mb.unwrap() <= vms.total_mb.unwrap());
        assert_eq!(vms.path, tmp.path().display().to_string());
        assert_eq!((storage[1].total_mb, storage[1].used_mb), (None, None));
        assert_eq!((storage[3].total_mb, storage[3].used_mb), (None, None));
    }
}
