//! The CD-ROM: ISO images of the host's ISO directory, inserted and ejected
//! live, and kept in the definition (`spec.iso`) for the next start.
//!
//! An ISO is named by its file name only; the path it resolves to must stay
//! inside the ISO directory once symlinks are resolved, so neither `../x.iso`
//! nor a symlink pointing elsewhere can hand a host file to a guest.
//! `start` resolves `spec.iso` in the host's ISO directory with the same
//! checks; an ISO that vanished meanwhile leaves the drive empty.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ironidc_core::engine::{EngineError, HostContext, IsoFile, VmSpec};
use serde_json::json;

use super::command_line::CDROM_ID;
use super::qmp::QmpClient;
use super::vm_dir::{check_name, VmDir};
use super::{process, QemuEngine};

/// Timeout of one QMP exchange.
const QMP_TIMEOUT: Duration = Duration::from_secs(5);

impl QemuEngine {
    /// The readable `*.iso` files of the ISO directory, by name. A missing
    /// directory has none; a symlink leading out of it is not listed.
    pub(super) async fn iso_list(&self, host: &HostContext) -> Result<Vec<IsoFile>, EngineError> {
        let dir_name = host.isos_dir.display().to_string();
        let mut entries = match tokio::fs::read_dir(&host.isos_dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(EngineError::io(dir_name, e)),
        };
        let mut found = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| EngineError::io(dir_name.clone(), e))?
        {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !is_iso_name(&name) {
                continue;
            }
            match resolve_iso(&host.isos_dir, &name).await {
                Ok(iso) => found.push(IsoFile {
                    name,
                    bytes: iso.bytes,
                }),
                Err(e) => tracing::debug!(iso = %name, error = %e, "not listed"),
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    /// Insert `iso` (or eject with `None`): live through QMP when QEMU runs,
    /// and in the stored definition either way.
    pub(super) async fn iso_set(
        &self,
        host: &HostContext,
        uuid: &str,
        iso: Option<&str>,
    ) -> Result<(), EngineError> {
        let dir = VmDir::new(host, uuid)?;
        let path = match iso {
            Some(name) => Some(resolve_iso(&host.isos_dir, name).await?.path),
            None => None,
        };
        let _guard = self.lock_vm(uuid).await;
        dir.require().await?;
        let mut spec = dir.read_spec().await?;
        if process::live_pid(&dir.pidfile(), uuid).is_some() {
            change_medium(&dir, path.as_deref()).await?;
        }
        spec.iso = iso.map(str::to_string);
        dir.write_spec(&spec).await?;
        tracing::info!(uuid, iso = ?spec.iso, "cd-rom set");
        Ok(())
    }
}

/// `force`: a guest that mounted the disc locks the tray; an operator's
/// insert or eject wins over that lock, as a real drive's eject hole does.
async fn change_medium(dir: &VmDir, iso: Option<&Path>) -> Result<(), EngineError> {
    let mut qmp = QmpClient::connect(&dir.qmp_socket(), QMP_TIMEOUT).await?;
    match iso {
        Some(path) => {
            let filename = utf8(path)?;
            qmp.execute(
                "blockdev-change-medium",
                Some(json!({
                    "id": CDROM_ID,
                    "filename": filename,
                    "format": "raw",
                    "read-only-mode": "read-only",
                    "force": true,
                })),
            )
            .await?;
        }
        None => {
            qmp.execute("eject", Some(json!({"id": CDROM_ID, "force": true})))
                .await?;
        }
    }
    Ok(())
}

/// The ISO to put in the CD-ROM when the VM starts, if any. Never fails the
/// start: an ISO that vanished (or whose directory is unknown) leaves the
/// drive empty, with a warning.
pub(super) async fn iso_for_start(isos_dir: &Path, dir: &VmDir, spec: &VmSpec) -> Option<PathBuf> {
    let name = spec.iso.as_deref()?;
    match resolve_iso(isos_dir, name).await {
        Ok(iso) => Some(iso.path),
        Err(e) => {
            tracing::warn!(uuid = dir.uuid(), iso = name, error = %e,
                "the VM's ISO is gone; starting with an empty CD-ROM");
            None
        }
    }
}

struct ResolvedIso {
    path: PathBuf,
    bytes: u64,
}

/// `name` inside `isos_dir`: a plain `*.iso` file name whose real path
/// (symlinks resolved) is a readable regular file inside the real
/// `isos_dir`. Anything else is `IsoNotFound(name)`.
async fn resolve_iso(isos_dir: &Path, name: &str) -> Result<ResolvedIso, EngineError> {
    let not_found = || EngineError::IsoNotFound(name.to_string());
    if check_name(name).is_err() || !is_iso_name(name) {
        return Err(not_found());
    }
    let canonical = |p: PathBuf| async move {
        match tokio::fs::canonicalize(&p).await {
            Ok(c) => Ok(c),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(not_found()),
            Err(e) => Err(EngineError::io(p.display().to_string(), e)),
        }
    };
    let root = canonical(isos_dir.to_path_buf()).await?;
    let path = canonical(root.join(name)).await?;
    if !path.starts_with(&root) {
        tracing::warn!(iso = name, target = %path.display(), "refusing an ISO that leads out of the ISO directory");
        return Err(not_found());
    }
    let meta = tokio::fs::metadata(&path)
        .await
        .map_err(|e| EngineError::io(path.display().to_string(), e))?;
    if !meta.is_file() {
        return Err(not_found());
    }
    // Readable by us, so presumably by QEMU (same user).
    tokio::fs::File::open(&path)
        .await
        .map_err(|e| EngineError::io(path.display().to_string(), e))?;
    utf8(&path)?;
    Ok(ResolvedIso {
        path,
        bytes: meta.len(),
    })
}

fn is_iso_name(name: &str) -> bool {
    name.len() > 4 && name.to_ascii_lowercase().ends_with(".iso")
}

/// QMP takes file names as JSON strings.
fn utf8(path: &Path) -> Result<&str, EngineError> {
    path.to_str().ok_or_else(|| {
        EngineError::io(
            path.display().to_string(),
            std::io::Error::new(ErrorKind::InvalidData, "path is not UTF-8"),
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_only_inside_the_iso_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let isos = tmp.path().join("isos");
        std::fs::create_dir(&isos).unwrap();
        std::fs::write(isos.join("a.iso"), b"aaaa").unwrap();
        std::fs::write(tmp.path().join("outside.iso"), b"secret").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside.iso"), isos.join("evil.iso")).unwrap();
        std::os::unix::fs::symlink(isos.join("a.iso"), isos.join("alias.iso")).unwrap();
        std::fs::create_dir(isos.join("dir.iso")).unwrap();
        std::fs::write(isos.join("notes.txt"), b"x").unwrap();

        let a = resolve_iso(&isos, "a.iso").await.unwrap();
        assert_eq!((a.path, a.bytes), (isos.join("a.iso"), 4));
        assert_eq!(
            resolve_iso(&isos, "alias.iso").await.unwrap().path,
            isos.join("a.iso")
        );
        for bad in [
            "../outside.iso",
            "evil.iso",
            "dir.iso",
            "notes.txt",
            "missing.iso",
            ".iso",
            "a.iso/",
        ] {
            let err = resolve_iso(&isos, bad).await.err().unwrap();
            assert!(
                matches!(&err, EngineError::IsoNotFound(n) if n == bad),
                "{bad}: {err}"
            );
        }
        let err = resolve_iso(&tmp.path().join("none"), "a.iso")
            .await
            .err()
            .unwrap();
        assert!(matches!(err, EngineError::IsoNotFound(_)), "{err}");
    }
}
