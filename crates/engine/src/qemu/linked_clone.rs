//! VM disks as qcow2 linked clones: a thin overlay whose backing file is the
//! base image, so creating one costs the same for a 100 MiB or a 100 GiB base.

use std::path::Path;
use std::time::Duration;

use ironidc_core::engine::EngineError;
use serde::Deserialize;

use super::exec;

pub const MIB: u64 = 1024 * 1024;

/// qemu-img only touches metadata here; anything slower is stuck.
const QEMU_IMG_TIMEOUT: Duration = Duration::from_secs(60);

/// What `qemu-img info --output=json` tells about an image.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageInfo {
    pub format: String,
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    // Only the tests look at the backing chain.
    #[cfg(test)]
    #[serde(rename = "full-backing-filename", default)]
    pub backing_file: Option<String>,
    #[cfg(test)]
    #[serde(rename = "backing-filename-format", default)]
    pub backing_format: Option<String>,
    /// Internal snapshots (qcow2); empty for other formats.
    #[serde(default)]
    pub snapshots: Vec<ImageSnapshot>,
}

/// An internal snapshot, as `qemu-img info` and QMP `query-block` list it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ImageSnapshot {
    /// A number QEMU assigns; `qemu-img snapshot` and QEMU's snapshot
    /// commands accept it in place of the name.
    pub id: String,
    pub name: String,
    #[serde(rename = "date-sec")]
    pub date_sec: i64,
    /// Bytes of saved guest memory; 0 for a disk-only snapshot.
    #[serde(rename = "vm-state-size")]
    pub vm_state_size: u64,
}

/// Inspect an image. `format` pins the format of images we made ourselves
/// (never probe a guest-writable disk); `None` lets qemu-img detect the format
/// of an operator-provided base image. `-U` (force-share) reads images a
/// running QEMU holds locked.
pub async fn info(
    qemu_img: &Path,
    image: &Path,
    format: Option<&str>,
) -> Result<ImageInfo, EngineError> {
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["info".as_ref(), "-U".as_ref(), "--output=json".as_ref()];
    if let Some(f) = format {
        args.push("-f".as_ref());
        args.push(f.as_ref());
    }
    args.push(image.as_os_str());
    let out = exec::run(qemu_img, args, QEMU_IMG_TIMEOUT).await?;
    serde_json::from_slice(&out.stdout).map_err(|e| EngineError::Command {
        program: exec::program_name(qemu_img),
        status: "unreadable output".into(),
        stderr: format!("qemu-img info {}: {e}", image.display()),
    })
}

/// Create `disk` as a qcow2 overlay of `base` with a virtual size of
/// `size_mb` MiB. `base` must be absolute: the path is stored in the overlay
/// and QEMU resolves it long after we are gone. The base's format is detected
/// once here and pinned in the overlay (`-F`), so it is never probed again.
pub async fn create(
    qemu_img: &Path,
    base: &Path,
    disk: &Path,
    size_mb: u64,
) -> Result<ImageInfo, EngineError> {
    let base_info = info(qemu_img, base, None).await?;
    let requested = size_mb.saturating_mul(MIB);
    if requested < base_info.virtual_size {
        return Err(EngineError::DiskShrink {
            current_mb: base_info.virtual_size.div_ceil(MIB),
            requested_mb: size_mb,
        });
    }
    let size = format!("{size_mb}M");
    let args: Vec<&std::ffi::OsStr> = vec![
        "create".as_ref(),
        "-q".as_ref(),
        "-f".as_ref(),
        "qcow2".as_ref(),
        "-F".as_ref(),
        base_info.format.as_ref(),
        "-b".as_ref(),
        base.as_os_str(),
        disk.as_os_str(),
        size.as_ref(),
    ];
    exec::run(qemu_img, args, QEMU_IMG_TIMEOUT).await?;
    tracing::info!(base = %base.display(), disk = %disk.display(), size_mb, format = %base_info.format, "linked clone created");
    Ok(base_info)
}

/// Grow our qcow2 `disk` to `size_mb` MiB. Equal size is a no-op; a smaller
/// size is refused (`DiskShrink`): shrinking would cut off guest data.
/// Returns whether the disk was resized.
pub async fn grow(qemu_img: &Path, disk: &Path, size_mb: u64) -> Result<bool, EngineError> {
    let current = info(qemu_img, disk, Some("qcow2")).await?.virtual_size;
    let requested = size_mb.saturating_mul(MIB);
    if requested < current {
        return Err(EngineError::DiskShrink {
            current_mb: current.div_ceil(MIB),
            requested_mb: size_mb,
        });
    }
    if requested == current {
        return Ok(false);
    }
    let size = format!("{size_mb}M");
    let args: Vec<&std::ffi::OsStr> = vec![
        "resize".as_ref(),
        "-q".as_ref(),
        "-f".as_ref(),
        "qcow2".as_ref(),
        disk.as_os_str(),
        size.as_ref(),
    ];
    exec::run(qemu_img, args, QEMU_IMG_TIMEOUT).await?;
    tracing::info!(disk = %disk.display(), from_mb = current / MIB, to_mb = size_mb, "disk grown");
    Ok(true)
}

/// Refuse a definition whose disk is smaller than the disk we have.
pub async fn check_no_shrink(
    qemu_img: &Path,
    disk: &Path,
    size_mb: u64,
) -> Result<(), EngineError> {
    let current = info(qemu_img, disk, Some("qcow2")).await?.virtual_size;
    if size_mb.saturating_mul(MIB) < current {
        return Err(EngineError::DiskShrink {
            current_mb: current.div_ceil(MIB),
            requested_mb: size_mb,
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn qemu_img() -> Option<PathBuf> {
        let ok = std::process::Command::new("qemu-img")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            Some("qemu-img".into())
        } else if std::env::var_os("CI").is_some() {
            panic!("qemu-img is required in CI");
        } else {
            eprintln!("skipping: qemu-img not installed");
            None
        }
    }

    #[tokio::test]
    async fn clone_grow_and_refuse_shrink() {
        let Some(img) = qemu_img() else { return };
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base.raw");
        std::fs::File::create(&base)
            .unwrap()
            .set_len(8 * MIB)
            .unwrap();
        let disk = tmp.path().join("disk.qcow2");

        let err = create(&img, &base, &disk, 4).await.unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::DiskShrink {
                    current_mb: 8,
                    requested_mb: 4
                }
            ),
            "{err}"
        );
        assert!(!disk.exists());

        let base_info = create(&img, &base, &disk, 16).await.unwrap();
        assert_eq!(base_info.format, "raw");
        let i = info(&img, &disk, Some("qcow2")).await.unwrap();
        assert_eq!(i.format, "qcow2");
        assert_eq!(i.virtual_size, 16 * MIB);
        assert_eq!(i.backing_file.as_deref(), Some(base.to_str().unwrap()));
        assert_eq!(i.backing_format.as_deref(), Some("raw"));

        assert!(!grow(&img, &disk, 16).await.unwrap());
        assert!(grow(&img, &disk, 32).await.unwrap());
        assert_eq!(
            info(&img, &disk, Some("qcow2")).await.unwrap().virtual_size,
            32 * MIB
        );
        let err = grow(&img, &disk, 20).await.unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::DiskShrink {
                    current_mb: 32,
                    requested_mb: 20
                }
            ),
            "{err}"
        );
        assert!(check_no_shrink(&img, &disk, 31).await.is_err());
        assert!(check_no_shrink(&img, &disk, 32).await.is_ok());
    }

    #[tokio::test]
    async fn qemu_img_failure_carries_stderr() {
        let Some(img) = qemu_img() else { return };
        let tmp = tempfile::tempdir().unwrap();
        let err = info(&img, &tmp.path().join("missing.qcow2"), None)
            .await
            .unwrap_err();
        match err {
            EngineError::Command { stderr, .. } => {
                assert!(stderr.contains("missing.qcow2"), "{stderr}")
            }
            other => panic!("unexpected {other}"),
        }
    }
}
