//! The QEMU command line of a VM, built as data and rendered once.
//!
//! Everything QEMU gets is in this one struct, so the golden test below shows
//! the full argument vector, and nothing else in the engine concatenates
//! option strings.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use ironidc_core::engine::{EngineError, NicSpec, VmSpec};

use super::accel::Accel;
use super::vm_dir::VmDir;

/// The machine type. `pc` (i440FX) rather than `q35`: SeaBIOS boots
/// syslinux from a virtio disk on both, but `pc` has hot-pluggable slots on
/// its root bus without extra root ports (disks, NICs and ISOs will be
/// hot-added later), and it is the smaller device model to emulate under TCG.
/// The KVM probe uses the same machine so it tests what VMs really run.
pub const MACHINE: &str = "pc";

/// `sun_path` holds 108 bytes including the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// The id of the QMP monitor chardev and of the guest agent channel.
const QMP_CHARDEV: &str = "qmp";
const QGA_CHARDEV: &str = "qga0";
/// The virtio-serial port name the QEMU guest agent looks for.
const QGA_PORT_NAME: &str = "org.qemu.guest_agent.0";
/// The qdev id of the CD-ROM drive: ISOs are inserted and ejected by it.
pub(crate) const CDROM_ID: &str = "cd0";
/// The SCSI controller the CD-ROM sits on.
const SCSI_ID: &str = "scsi0";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuCommandLine {
    pub uuid: String,
    pub accel: Accel,
    pub cpus: u32,
    pub mem_mb: u64,
    pub disk: PathBuf,
    pub qmp_socket: PathBuf,
    pub vnc_socket: PathBuf,
    pub qga_socket: PathBuf,
    pub serial_log: PathBuf,
    pub pidfile: PathBuf,
    pub nics: Vec<NicSpec>,
    /// The cloud-init seed volume, attached read-only when present.
    pub seed: Option<PathBuf>,
    /// The ISO in the CD-ROM at start; `None`: the drive is empty.
    pub cdrom: Option<PathBuf>,
}

/// The QEMU ids of one NIC, derived from its MAC rather than its position:
/// a hot-plugged or unplugged NIC must not change the ids of the others, and
/// hot-unplug finds the device of a NIC from the MAC alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NicIds {
    pub netdev: String,
    pub device: String,
}

impl NicIds {
    /// `None` for a string that is not a MAC address.
    pub fn of(mac: &str) -> Option<Self> {
        let hex = mac_hex(mac)?;
        Some(Self {
            netdev: format!("net-{hex}"),
            device: format!("nic-{hex}"),
        })
    }
}

/// The 12 lower-case hex digits of `aa:bb:cc:dd:ee:ff` (or with `-`).
pub(crate) fn mac_hex(mac: &str) -> Option<String> {
    let parts: Vec<&str> = mac.split([':', '-']).collect();
    let valid = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    valid.then(|| parts.concat().to_ascii_lowercase())
}

impl QemuCommandLine {
    /// The command line of `spec` living in `dir`. Fails when a socket path
    /// would not fit into a unix socket address (QEMU would fail later and
    /// less clearly).
    pub(crate) fn for_vm(spec: &VmSpec, dir: &VmDir, accel: Accel) -> Result<Self, EngineError> {
        let line = Self {
            uuid: dir.uuid().to_string(),
            accel,
            cpus: spec.cpu_num.max(1),
            mem_mb: spec.mem_mb,
            disk: dir.disk(),
            qmp_socket: dir.qmp_socket(),
            vnc_socket: dir.vnc_socket(),
            qga_socket: dir.qga_socket(),
            serial_log: dir.serial_log(),
            pidfile: dir.pidfile(),
            nics: spec.nics.clone(),
            seed: None,
            cdrom: None,
        };
        for socket in [&line.qmp_socket, &line.vnc_socket, &line.qga_socket] {
            check_socket_path(socket)?;
        }
        // The NIC ids come from the MACs: they must be MACs, and distinct.
        let mut seen = std::collections::HashSet::new();
        for nic in &line.nics {
            let Some(hex) = mac_hex(&nic.mac) else {
                return Err(invalid_nic(&nic.mac, "not a MAC address"));
            };
            if !seen.insert(hex) {
                return Err(invalid_nic(&nic.mac, "MAC address used by two NICs"));
            }
        }
        Ok(line)
    }

    /// The argument vector (without the program name).
    pub fn args(&self) -> Vec<OsString> {
        let mut a = Args::default();
        a.plain(["-name", &format!("guest={}", self.uuid)]);
        // No user config file, no default devices: every device is listed here.
        a.plain(["-no-user-config", "-nodefaults"]);
        a.plain([
            "-machine",
            MACHINE,
            "-accel",
            self.accel.as_str(),
            "-cpu",
            self.accel.cpu_model(),
        ]);
        a.plain([
            "-smp",
            &self.cpus.to_string(),
            "-m",
            &format!("{}M", self.mem_mb),
        ]);

        // -blockdev pins the format (never probed) and bootindex makes SeaBIOS
        // boot this disk first. cache.direct=off = host page cache, writeback.
        a.opts("-blockdev", &[
            "driver=qcow2,node-name=disk0,discard=unmap,cache.direct=off,file.driver=file,file.filename=".into(),
            escape_opt(self.disk.as_os_str()),
        ]);
        a.plain([
            "-device",
            "virtio-blk-pci,id=virtio-disk0,drive=disk0,bootindex=1",
        ]);

        if let Some(seed) = &self.seed {
            a.opts(
                "-blockdev",
                &[
                    "driver=raw,node-name=seed0,read-only=on,file.driver=file,file.filename="
                        .into(),
                    escape_opt(seed.as_os_str()),
                ],
            );
            a.plain(["-device", "virtio-blk-pci,id=virtio-seed,drive=seed0"]);
        }

        for nic in &self.nics {
            // Ids from the MAC (checked in for_vm), not the NIC name, so they
            // are always valid QEMU ids. A NIC on a bridge uses the tap
            // ironidc made for it (named after its MAC); without a bridge it
            // gets QEMU's user-mode network with restrict=on (no outside
            // access). romfile= skips the iPXE ROM: we never net-boot, and
            // its init costs seconds under TCG.
            let Some(NicIds { netdev, device }) = NicIds::of(&nic.mac) else {
                continue;
            };
            match tap_of(nic) {
                Some(tap) => a.plain([
                    "-netdev",
                    &format!("tap,id={netdev},ifname={tap},script=no,downscript=no"),
                ]),
                None => a.plain(["-netdev", &format!("user,id={netdev},restrict=on")]),
            }
            a.opts(
                "-device",
                &[
                    format!("virtio-net-pci,id={device},netdev={netdev},romfile=,mac=").into(),
                    escape_opt(OsStr::new(&nic.mac)),
                ],
            );
        }

        a.opts(
            "-chardev",
            &[
                format!("socket,id={QMP_CHARDEV},server=on,wait=off,path=").into(),
                escape_opt(self.qmp_socket.as_os_str()),
            ],
        );
        a.plain(["-mon", &format!("chardev={QMP_CHARDEV},mode=control")]);

        // VNC only on a unix socket: the console relay connects to it; no
        // TCP port is ever opened on the host.
        a.plain(["-display", "none"]);
        a.plain(["-device", "VGA"]);
        a.opts(
            "-vnc",
            &["unix:".into(), escape_opt(self.vnc_socket.as_os_str())],
        );

        // The first serial port goes to a file: the console log.
        a.opts(
            "-chardev",
            &[
                "file,id=serial0,path=".into(),
                escape_opt(self.serial_log.as_os_str()),
            ],
        );
        a.plain(["-serial", "chardev:serial0"]);

        a.opts(
            "-chardev",
            &[
                format!("socket,id={QGA_CHARDEV},server=on,wait=off,path=").into(),
                escape_opt(self.qga_socket.as_os_str()),
            ],
        );
        a.plain(["-device", "virtio-serial-pci,id=virtio-serial0"]);
        a.plain([
            "-device",
            &format!("virtserialport,chardev={QGA_CHARDEV},name={QGA_PORT_NAME}"),
        ]);

        // A removable CD-ROM on virtio-scsi, on every VM, so an ISO can be
        // inserted live (QMP blockdev-change-medium by the drive's qdev id)
        // without a hot-plug. Listed after the other PCI devices so that
        // their slots (and so the guest's interface names) do not move.
        // bootindex=2: an installer ISO boots when the disk has no OS.
        a.plain(["-device", &format!("virtio-scsi-pci,id={SCSI_ID}")]);
        let cd = format!("scsi-cd,id={CDROM_ID},bus={SCSI_ID}.0,bootindex=2");
        match &self.cdrom {
            Some(iso) => {
                a.opts(
                    "-blockdev",
                    &[
                        "driver=raw,node-name=iso0,read-only=on,file.driver=file,file.filename="
                            .into(),
                        escape_opt(iso.as_os_str()),
                    ],
                );
                a.plain(["-device", &format!("{cd},drive=iso0")]);
            }
            None => a.plain(["-device", &cd]),
        }

        // -daemonize: QEMU double-forks and setsid()s, so the VM outlives the
        // controller; it writes its own pidfile (not an option list: no escaping).
        a.plain(["-daemonize", "-pidfile"]);
        a.path(&self.pidfile);
        a.0
    }
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn plain<const N: usize>(&mut self, items: [&str; N]) {
        self.0.extend(items.iter().map(OsString::from));
    }
    fn path(&mut self, p: &Path) {
        self.0.push(p.as_os_str().to_os_string());
    }
    /// `flag` followed by one option-list argument assembled from parts.
    fn opts(&mut self, flag: &str, parts: &[OsString]) {
        self.0.push(flag.into());
        let mut value = OsString::new();
        for p in parts {
            value.push(p);
        }
        self.0.push(value);
    }
}

/// The tap of a bridged NIC. Its name comes from the MAC (validated by the
/// core), so it is a safe QEMU option value.
pub(crate) fn tap_of(nic: &NicSpec) -> Option<String> {
    nic.bridge.as_ref()?;
    ironidc_net::links::tap_name_for_mac(&nic.mac).ok()
}

fn invalid_nic(mac: &str, why: &str) -> EngineError {
    EngineError::io(
        format!("NIC {mac}"),
        std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_string()),
    )
}

/// Escape a value for a QEMU option list (`key=value,key=value`): a comma
/// inside a value is written twice. Without this a path containing a comma
/// would inject options.
pub fn escape_opt(value: &OsStr) -> OsString {
    let mut out = Vec::with_capacity(value.len());
    for &b in value.as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

pub(crate) fn check_socket_path(path: &Path) -> Result<(), EngineError> {
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(EngineError::SocketPathTooLong(path.display().to_string()));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use ironidc_core::engine::HostContext;

    fn spec(nics: Vec<NicSpec>) -> VmSpec {
        VmSpec {
            uuid: "vm1".into(),
            cpu_num: 2,
            mem_mb: 512,
            hdd_mb: 2048,
            os_image: "demo.qcow2".into(),
            nics,
            iso: None,
        }
    }

    fn host(vms_dir: &str) -> HostContext {
        HostContext {
            hs_name: "h1".into(),
            vms_dir: vms_dir.into(),
            images_dir: "/srv/images".into(),
            backups_dir: "/srv/backups".into(),
            isos_dir: "/srv/isos".into(),
        }
    }

    #[test]
    fn golden_command_line() {
        let nics = vec![
            NicSpec {
                name: "ethernet0".into(),
                mac: "52:54:00:00:00:01".into(),
                bridge: None,
            },
            NicSpec {
                name: "ethernet1".into(),
                mac: "52:54:00:ab:cd:02".into(),
                bridge: Some("brnat0".into()),
            },
        ];
        let dir = VmDir::new(&host("/var/lib/ironidc/vms"), "vm1").unwrap();
        let mut line = QemuCommandLine::for_vm(&spec(nics), &dir, Accel::Tcg).unwrap();
        line.seed = Some(dir.seed_image());
        line.cdrom = Some("/srv/isos/debian,12.iso".into());
        let got: Vec<String> = line
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let d = "/var/lib/ironidc/vms/vm1";
        let want: Vec<String> = [
            "-name", "guest=vm1",
            "-no-user-config", "-nodefaults",
            "-machine", "pc", "-accel", "tcg", "-cpu", "max",
            "-smp", "2", "-m", "512M",
            "-blockdev", &format!("driver=qcow2,node-name=disk0,discard=unmap,cache.direct=off,file.driver=file,file.filename={d}/disk.qcow2"),
            "-device", "virtio-blk-pci,id=virtio-disk0,drive=disk0,bootindex=1",
            "-blockdev", &format!("driver=raw,node-name=seed0,read-only=on,file.driver=file,file.filename={d}/seed.img"),
            "-device", "virtio-blk-pci,id=virtio-seed,drive=seed0",
            "-netdev", "user,id=net-525400000001,restrict=on",
            "-device", "virtio-net-pci,id=nic-525400000001,netdev=net-525400000001,romfile=,mac=52:54:00:00:00:01",
            "-netdev", "tap,id=net-525400abcd02,ifname=ix525400abcd02,script=no,downscript=no",
            "-device", "virtio-net-pci,id=nic-525400abcd02,netdev=net-525400abcd02,romfile=,mac=52:54:00:ab:cd:02",
            "-chardev", &format!("socket,id=qmp,server=on,wait=off,path={d}/qmp.sock"),
            "-mon", "chardev=qmp,mode=control",
            "-display", "none",
            "-device", "VGA",
            "-vnc", &format!("unix:{d}/vnc.sock"),
            "-chardev", &format!("file,id=serial0,path={d}/serial.log"),
            "-serial", "chardev:serial0",
            "-chardev", &format!("socket,id=qga0,server=on,wait=off,path={d}/qga.sock"),
            "-device", "virtio-serial-pci,id=virtio-serial0",
            "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
            "-device", "virtio-scsi-pci,id=scsi0",
            "-blockdev", "driver=raw,node-name=iso0,read-only=on,file.driver=file,file.filename=/srv/isos/debian,,12.iso",
            "-device", "scsi-cd,id=cd0,bus=scsi0.0,bootindex=2,drive=iso0",
            "-daemonize", "-pidfile", &format!("{d}/qemu.pid"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn kvm_uses_the_host_cpu() {
        let dir = VmDir::new(&host("/v"), "vm1").unwrap();
        let args = QemuCommandLine::for_vm(&spec(vec![]), &dir, Accel::Kvm)
            .unwrap()
            .args();
        let pos = args.iter().position(|a| a == "-cpu").unwrap();
        assert_eq!(args[pos + 1], "host");
        assert_eq!(args[pos - 1], "kvm");
        assert!(
            !args.iter().any(|a| a == "-netdev"),
            "no NIC unless the spec lists one"
        );
    }

    #[test]
    fn empty_cdrom_and_mac_derived_ids() {
        let dir = VmDir::new(&host("/v"), "vm1").unwrap();
        let args: Vec<String> = QemuCommandLine::for_vm(&spec(vec![]), &dir, Accel::Tcg)
            .unwrap()
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let cd = args.iter().position(|a| a.starts_with("scsi-cd,")).unwrap();
        assert_eq!(args[cd], "scsi-cd,id=cd0,bus=scsi0.0,bootindex=2");
        assert!(!args.iter().any(|a| a.contains("node-name=iso0")));

        let ids = NicIds::of("52:54:00:AB:cd:0F").unwrap();
        assert_eq!(
            (ids.netdev.as_str(), ids.device.as_str()),
            ("net-525400abcd0f", "nic-525400abcd0f")
        );
        assert_eq!(NicIds::of("52-54-00-ab-cd-0f"), Some(ids));
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0g",
            "525400abcd0f",
            "52:54:00:ab:cd:0f,x=1",
        ] {
            assert_eq!(NicIds::of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn nics_need_distinct_valid_macs() {
        let dir = VmDir::new(&host("/v"), "vm1").unwrap();
        let nic = |mac: &str| NicSpec {
            name: "n".into(),
            mac: mac.into(),
            bridge: None,
        };
        let err = QemuCommandLine::for_vm(&spec(vec![nic("nope")]), &dir, Accel::Tcg).unwrap_err();
        assert!(err.to_string().contains("not a MAC address"), "{err}");
        let twice = vec![nic("52:54:00:00:00:01"), nic("52:54:00:00:00:01")];
        let err = QemuCommandLine::for_vm(&spec(twice), &dir, Accel::Tcg).unwrap_err();
        assert!(err.to_string().contains("used by two NICs"), "{err}");
    }

    #[test]
    fn commas_in_paths_are_escaped_in_option_lists_only() {
        let dir = VmDir::new(&host("/srv/a,b"), "vm1").unwrap();
        let args = QemuCommandLine::for_vm(&spec(vec![]), &dir, Accel::Tcg)
            .unwrap()
            .args();
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.contains(&"unix:/srv/a,,b/vm1/vnc.sock".to_string()));
        assert!(args
            .iter()
            .any(|a| a.ends_with("file.filename=/srv/a,,b/vm1/disk.qcow2")));
        // -pidfile takes a plain path.
        assert_eq!(args.last().unwrap(), "/srv/a,b/vm1/qemu.pid");
    }

    #[test]
    fn socket_paths_must_fit_sun_path() {
        // "/" + 95 x's + "/vm1/qmp.sock" = 109 bytes: too long.
        let long = format!("/{}", "x".repeat(95));
        let dir = VmDir::new(&host(&long), "vm1").unwrap();
        let err = QemuCommandLine::for_vm(&spec(vec![]), &dir, Accel::Tcg).unwrap_err();
        assert!(matches!(err, EngineError::SocketPathTooLong(p) if p.ends_with("qmp.sock")));
        // 107 bytes exactly is fine.
        let fits = format!("/{}", "x".repeat(93));
        assert_eq!(format!("{fits}/vm1/qmp.sock").len(), MAX_SOCKET_PATH);
        let dir = VmDir::new(&host(&fits), "vm1").unwrap();
        assert!(QemuCommandLine::for_vm(&spec(vec![]), &dir, Accel::Tcg).is_ok());
    }
}
