//! The demo guest's initramfs: busybox, the boot scripts under `guest/`, the kernel
//! modules it loads, and host files such as the guest agent with its shared libraries,
//! written as one uncompressed newc cpio archive (the kernel accepts it as is, and skipping
//! compression saves TCG guests the time to decompress it).
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use super::cpio::CpioWriter;
use super::error::ImageError;
use super::kernel_modules::LoadableModule;

/// Text files of the guest: archive path, permissions, contents. Later additions (agent,
/// ...) are a line here plus a file under `guest/`. Changing any of them (or anything
/// else in the guest) means bumping `DEMO_IMAGE_REVISION`.
const GUEST_FILES: &[(&str, u32, &str)] = &[
    ("init", 0o755, include_str!("guest/init.sh")),
    ("etc/inittab", 0o644, include_str!("guest/inittab")),
    ("etc/init.d/rcS", 0o755, include_str!("guest/rcS.sh")),
    (
        "etc/acpi/PWRF/00000080",
        0o755,
        include_str!("guest/power-button.sh"),
    ),
    (
        "usr/share/udhcpc/default.script",
        0o755,
        include_str!("guest/udhcpc.script"),
    ),
    ("etc/profile", 0o644, include_str!("guest/profile")),
    ("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n"),
    ("etc/group", 0o644, "root:x:0:\n"),
    // No password until one is set through the guest agent (`*` matches no password).
    ("etc/shadow", 0o600, "root:*:19000:0:99999:7:::\n"),
    // busybox-static has no chpasswd applet; qemu-ga's guest-set-user-password needs one.
    (
        "usr/sbin/chpasswd",
        0o755,
        include_str!("guest/chpasswd.sh"),
    ),
];

/// Directories whose permissions or mere existence matter: mount points, the places
/// `busybox --install -s` writes its applet links, the log directory of acpid.
const GUEST_DIRS: &[(&str, u32)] = &[
    ("bin", 0o755),
    ("sbin", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("dev", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("run", 0o755),
    ("tmp", 0o1777),
    ("root", 0o700),
    ("var/log", 0o755),
    ("mnt/disk", 0o755),
    ("mnt/cdrom", 0o755),
];

/// Where /init reads the modules to load, one name per line, in load order.
const MODULE_LIST: &str = "etc/ironidc/modules";

/// A host file copied into the guest at `path` (relative to the guest's root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GuestFile {
    pub path: String,
    pub mode: u32,
    pub source: PathBuf,
}

impl GuestFile {
    /// `path` may be absolute (`/usr/sbin/qemu-ga`): the archive wants it relative.
    pub fn new(path: &str, mode: u32, source: PathBuf) -> Self {
        GuestFile {
            path: path.trim_start_matches('/').to_string(),
            mode,
            source,
        }
    }
}

/// Write the demo initramfs to `dest`; returns its size in bytes.
pub(crate) fn write_demo_initramfs(
    dest: &Path,
    busybox: &Path,
    modules: &[LoadableModule],
    host_files: &[GuestFile],
) -> Result<u64, ImageError> {
    let mut tree = Tree::default();
    for (path, perm) in GUEST_DIRS {
        tree.add(path, Node::Dir(*perm));
    }
    for (path, perm, text) in GUEST_FILES {
        tree.add(path, Node::Bytes(*perm, text.as_bytes()));
    }
    tree.add("bin/busybox", Node::HostFile(0o755, busybox.to_path_buf()));
    // The kernel runs /init with "#!/bin/busybox sh"; busybox init and inittab want /bin/sh
    // before `--install` has run, so this one link is made here.
    tree.add("bin/sh", Node::Symlink("busybox"));
    // Programs built for a standard system look for their state under /var/run.
    tree.add("var/run", Node::Symlink("../run"));
    for file in host_files {
        tree.add(&file.path, Node::HostFile(file.mode, file.source.clone()));
    }
    // Opened by the kernel for PID 1's stdio before /init runs, i.e. before devtmpfs.
    tree.add("dev/console", Node::CharDevice(0o600, 5, 1));
    let list: String = modules.iter().map(|m| format!("{}\n", m.name)).collect();
    tree.add(MODULE_LIST, Node::Owned(0o644, list.into_bytes()));
    for module in modules {
        tree.add(
            &format!("lib/modules/{}.ko", module.name),
            Node::Bytes(0o644, &module.bytes),
        );
    }
    tree.write(dest)
}

enum Node<'a> {
    Dir(u32),
    Bytes(u32, &'a [u8]),
    Owned(u32, Vec<u8>),
    HostFile(u32, PathBuf),
    Symlink(&'a str),
    CharDevice(u32, u32, u32),
}

/// Archive entries by path. A `BTreeMap` yields every directory before its contents (a
/// path sorts after its prefixes), which the kernel needs: it creates no missing parents.
#[derive(Default)]
struct Tree<'a> {
    nodes: BTreeMap<String, Node<'a>>,
}

impl<'a> Tree<'a> {
    /// Add `path` and, as 0755 directories, any of its parents not added yet.
    fn add(&mut self, path: &str, node: Node<'a>) {
        let mut parent = Path::new(path).parent();
        while let Some(dir) = parent.and_then(Path::to_str).filter(|d| !d.is_empty()) {
            self.nodes
                .entry(dir.to_string())
                .or_insert(Node::Dir(0o755));
            parent = Path::new(dir).parent();
        }
        self.nodes.insert(path.to_string(), node);
    }

    fn write(&self, dest: &Path) -> Result<u64, ImageError> {
        let file = File::create(dest).map_err(ImageError::io("create", dest))?;
        let mut cpio = CpioWriter::new(BufWriter::new(file));
        for (path, node) in &self.nodes {
            let written = match node {
                Node::Dir(perm) => cpio.dir(path, *perm),
                Node::Bytes(perm, data) => cpio.file(path, *perm, data),
                Node::Owned(perm, data) => cpio.file(path, *perm, data),
                Node::Symlink(target) => cpio.symlink(path, target),
                Node::CharDevice(perm, major, minor) => {
                    cpio.char_device(path, *perm, *major, *minor)
                }
                Node::HostFile(perm, src) => {
                    // Streamed, not read into memory; errors opening it name the source.
                    let mut file = File::open(src).map_err(ImageError::io("open", src))?;
                    let len = file
                        .metadata()
                        .map_err(ImageError::io("inspect", src))?
                        .len();
                    cpio.file_from_reader(path, *perm, len, &mut file)
                }
            };
            written.map_err(ImageError::io("write initramfs", dest))?;
        }
        let file = cpio
            .finish()
            .and_then(|buffered| buffered.into_inner().map_err(|e| e.into_error()))
            .map_err(ImageError::io("write initramfs", dest))?;
        file.sync_all().map_err(ImageError::io("sync", dest))?;
        Ok(file
            .metadata()
            .map_err(ImageError::io("inspect", dest))?
            .len())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn archive_lists_parents_first_and_holds_the_guest() {
        let dir = tempfile::tempdir().unwrap();
        let busybox = dir.path().join("busybox");
        std::fs::write(&busybox, b"\x7fELF fake busybox").unwrap();
        let modules = [
            LoadableModule {
                name: "virtio".into(),
                bytes: b"a".to_vec(),
            },
            LoadableModule {
                name: "virtio_pci".into(),
                bytes: b"b".to_vec(),
            },
        ];
        let library = dir.path().join("libfake.so.1");
        std::fs::write(&library, b"\x7fELF fake library").unwrap();
        let host_files = [GuestFile::new(
            "/lib/x86_64-linux-gnu/libfake.so.1",
            0o644,
            library,
        )];
        let dest = dir.path().join("initrd");
        let size = write_demo_initramfs(&dest, &busybox, &modules, &host_files).unwrap();
        assert_eq!(size, std::fs::metadata(&dest).unwrap().len());

        let Ok(out) = std::process::Command::new("cpio")
            .args(["-t", "--quiet", "-F"])
            .arg(&dest)
            .output()
        else {
            eprintln!("skipping listing check: GNU cpio (Debian package cpio) is not installed");
            return;
        };
        let listing = String::from_utf8(out.stdout).unwrap();
        let names: Vec<&str> = listing.lines().collect();
        for wanted in [
            "init",
            "bin/busybox",
            "bin/sh",
            "dev/console",
            "etc/inittab",
            "etc/acpi/PWRF/00000080",
            "etc/ironidc/modules",
            "usr/share/udhcpc/default.script",
            "lib/modules/virtio_pci.ko",
            "lib/x86_64-linux-gnu/libfake.so.1",
            "etc/shadow",
            "usr/sbin/chpasswd",
            "mnt/disk",
            "mnt/cdrom",
            "tmp",
        ] {
            assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
        }
        for (i, name) in names.iter().enumerate() {
            if let Some((parent, _)) = name.rsplit_once('/') {
                let parent_at = names.iter().position(|n| *n == parent);
                assert!(
                    parent_at.is_some_and(|p| p < i),
                    "{parent} not before {name}"
                );
            }
        }
    }
}
