//! The kernel unpacked from a Debian `linux-image-*` package, and the modules a guest must
//! load, in dependency order.
//!
//! The package ships `modules.builtin` but no `modules.dep` (depmod runs at install time),
//! so dependencies are read from each module's `.modinfo` (`depends=a,b`). Compressed
//! modules (`.ko.xz`, `.ko.zst`, `.ko.gz`) are decompressed at build time, so the guest's
//! busybox `insmod` only ever sees plain ELF objects.
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::elf;
use super::error::ImageError;
use super::host_tool::{HostTool, GZIP, XZ, ZSTD};

/// Where the module tree lives: older packages use /lib, merged-/usr ones /usr/lib.
const MODULE_ROOTS: &[&str] = &["lib/modules", "usr/lib/modules"];

#[derive(Debug)]
pub(crate) struct Kernel {
    /// `uname -r` of the kernel, e.g. `6.1.0-56-cloud-amd64`.
    pub version: String,
    pub vmlinuz: PathBuf,
    modules_dir: PathBuf,
}

/// A module ready to be put into the initramfs: its canonical name (`-` written as `_`,
/// as the kernel names it) and its uncompressed bytes.
#[derive(Debug)]
pub(crate) struct LoadableModule {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// What the guest must do with the modules asked for.
#[derive(Debug, Default)]
pub(crate) struct ModulePlan {
    /// Modules to `insmod`, each after the modules it depends on.
    pub load_order: Vec<LoadableModule>,
    /// Asked-for modules the kernel has built in: nothing to load.
    pub builtin: Vec<String>,
}

impl Kernel {
    /// Find the single kernel inside an unpacked `linux-image-*` package.
    pub fn in_package(unpacked: &Path, package: &str) -> Result<Self, ImageError> {
        let missing = |what: &str| ImageError::MissingInPackage {
            package: package.into(),
            what: what.into(),
        };
        let modules_dir = MODULE_ROOTS
            .iter()
            .filter_map(|root| std::fs::read_dir(unpacked.join(root)).ok())
            .flat_map(|entries| entries.filter_map(Result::ok).map(|e| e.path()))
            .find(|dir| dir.join("kernel").is_dir())
            .ok_or_else(|| missing("a lib/modules/<version>/kernel directory"))?;
        let version = modules_dir
            .file_name()
            .and_then(OsStr::to_str)
            .ok_or_else(|| missing("a module directory named after the kernel version"))?
            .to_string();
        let vmlinuz = unpacked.join("boot").join(format!("vmlinuz-{version}"));
        if !vmlinuz.is_file() {
            return Err(missing(&format!("boot/vmlinuz-{version}")));
        }
        Ok(Kernel {
            version,
            vmlinuz,
            modules_dir,
        })
    }

    /// Resolve `wanted` (module names) into what to load, dependencies first.
    pub fn plan_modules(&self, wanted: &[&str]) -> Result<ModulePlan, ImageError> {
        let builtin = self.builtin_modules()?;
        let files = self.module_files()?;
        let mut resolver = Resolver {
            kernel: self,
            files: &files,
            builtin: &builtin,
            seen: HashSet::new(),
            plan: ModulePlan::default(),
        };
        for name in wanted {
            resolver.visit(&canonical(name))?;
        }
        Ok(resolver.plan)
    }

    /// Names listed in `modules.builtin` (e.g. `kernel/fs/ext4/ext4.ko` → `ext4`).
    fn builtin_modules(&self) -> Result<HashSet<String>, ImageError> {
        let path = self.modules_dir.join("modules.builtin");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(ImageError::Io {
                    action: "read",
                    path,
                    source,
                })
            }
        };
        Ok(text
            .lines()
            .filter_map(|line| module_name_of(Path::new(line.trim())))
            .collect())
    }

    /// Every module file under `kernel/`, by canonical name.
    fn module_files(&self) -> Result<HashMap<String, PathBuf>, ImageError> {
        let mut files = HashMap::new();
        let mut pending = vec![self.modules_dir.join("kernel")];
        while let Some(dir) = pending.pop() {
            let entries = std::fs::read_dir(&dir).map_err(ImageError::io("list", &dir))?;
            for entry in entries {
                let entry = entry.map_err(ImageError::io("list", &dir))?;
                let path = entry.path();
                let file_type = entry
                    .file_type()
                    .map_err(ImageError::io("inspect", &path))?;
                if file_type.is_dir() {
                    pending.push(path);
                } else if let Some(name) = module_name_of(&path) {
                    files.insert(name, path);
                }
            }
        }
        Ok(files)
    }
}

struct Resolver<'a> {
    kernel: &'a Kernel,
    files: &'a HashMap<String, PathBuf>,
    builtin: &'a HashSet<String>,
    seen: HashSet<String>,
    plan: ModulePlan,
}

impl Resolver<'_> {
    /// Depth-first, post-order: a module is appended after all it depends on. `seen` is
    /// marked before recursing, so a (broken) dependency cycle cannot loop forever.
    fn visit(&mut self, name: &str) -> Result<(), ImageError> {
        if !self.seen.insert(name.to_string()) {
            return Ok(());
        }
        if self.builtin.contains(name) {
            self.plan.builtin.push(name.to_string());
            return Ok(());
        }
        let path = self
            .files
            .get(name)
            .ok_or_else(|| ImageError::ModuleNotFound {
                kernel_version: self.kernel.version.clone(),
                module: name.to_string(),
            })?;
        let bytes = read_module(path)?;
        let info = elf::modinfo(&bytes).ok_or(ImageError::BadModule {
            path: path.clone(),
            reason: "no .modinfo section",
        })?;
        let depends: Vec<String> = info
            .iter()
            .filter(|(key, _)| key == "depends")
            .flat_map(|(_, value)| value.split(','))
            .filter(|dep| !dep.is_empty())
            .map(canonical)
            .collect();
        for dep in &depends {
            self.visit(dep)?;
        }
        self.plan.load_order.push(LoadableModule {
            name: name.to_string(),
            bytes,
        });
        Ok(())
    }
}

/// The kernel treats `-` and `_` in module names alike and reports `_`.
fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

/// `…/nls_iso8859-1.ko.xz` → `nls_iso8859_1`; `None` for files that are not modules.
fn module_name_of(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = ["", ".xz", ".zst", ".gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext)?.strip_suffix(".ko"))?;
    (!stem.is_empty()).then(|| canonical(stem))
}

/// The module's ELF bytes, decompressed with the matching host tool when needed.
fn read_module(path: &Path) -> Result<Vec<u8>, ImageError> {
    let decompressor: Option<HostTool> = match path.extension().and_then(OsStr::to_str) {
        Some("xz") => Some(XZ),
        Some("zst") => Some(ZSTD),
        Some("gz") => Some(GZIP),
        _ => None,
    };
    match decompressor {
        Some(tool) => tool.run(&[OsStr::new("-d"), OsStr::new("-c"), path.as_os_str()]),
        None => std::fs::read(path).map_err(ImageError::io("read", path)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn names_modules_like_the_kernel() {
        assert_eq!(
            module_name_of(Path::new("kernel/fs/nls/nls_iso8859-1.ko")).as_deref(),
            Some("nls_iso8859_1")
        );
        assert_eq!(
            module_name_of(Path::new("/x/virtio_net.ko.xz")).as_deref(),
            Some("virtio_net")
        );
        assert_eq!(
            module_name_of(Path::new("/x/virtio_net.ko.zst")).as_deref(),
            Some("virtio_net")
        );
        assert_eq!(module_name_of(Path::new("modules.builtin")), None);
        assert_eq!(module_name_of(Path::new("/x/.ko")), None);
    }

    #[test]
    fn compressed_modules_are_decompressed() {
        let Ok(xz) = XZ.locate() else {
            eprintln!("skipping: xz (Debian package xz-utils) is not installed");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.ko");
        std::fs::write(&path, b"\x7fELF pretend module").unwrap();
        let status = std::process::Command::new(xz).arg(&path).status().unwrap();
        assert!(status.success());
        assert_eq!(
            read_module(&dir.path().join("m.ko.xz")).unwrap(),
            b"\x7fELF pretend module"
        );
    }
}
