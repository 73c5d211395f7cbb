//! The QEMU guest agent of the demo guest: Debian's real `qemu-ga`, dynamically linked,
//! shipped with its loader and shared libraries taken from this host.
use std::path::{Path, PathBuf};

use super::debian_package::PackageCache;
use super::error::ImageError;
use super::initramfs::GuestFile;
use super::shared_libs::{runtime_closure, HOST_LIBRARY_DIRS};

const AGENT_PACKAGE: &str = "qemu-guest-agent";
/// Where the agent lives in its package, on hosts that have it installed, and in the guest.
const AGENT_IN_PACKAGE: &str = "usr/sbin/qemu-ga";
const HOST_AGENT: &str = "/usr/sbin/qemu-ga";
const GUEST_AGENT_PATH: &str = "usr/sbin/qemu-ga";

/// `qemu-ga` and everything it needs to run, as files of the guest.
///
/// The binary comes from the `qemu-guest-agent` package (the host's own `/usr/sbin/qemu-ga`
/// when the package cannot be had); its libraries come from the host's library
/// directories, so they must be installed here: a missing one fails the build with
/// [`ImageError::MissingLibrary`].
pub(crate) fn agent_files(cache: &PackageCache) -> Result<Vec<GuestFile>, ImageError> {
    let binary = agent_binary(cache)?;
    let dirs: Vec<&Path> = HOST_LIBRARY_DIRS.iter().map(Path::new).collect();
    let mut files = vec![GuestFile::new(GUEST_AGENT_PATH, 0o755, binary.clone())];
    files.extend(runtime_closure(&binary, &dirs)?);
    Ok(files)
}

fn agent_binary(cache: &PackageCache) -> Result<PathBuf, ImageError> {
    let from_package = cache.candidate(AGENT_PACKAGE).and_then(|package| {
        let path = cache.unpacked(&package)?.join(AGENT_IN_PACKAGE);
        if path.is_file() {
            Ok(path)
        } else {
            Err(ImageError::MissingInPackage {
                package: package.name,
                what: AGENT_IN_PACKAGE.into(),
            })
        }
    });
    match from_package {
        Ok(path) => Ok(path),
        Err(err) if Path::new(HOST_AGENT).is_file() => {
            tracing::warn!(%err, agent = HOST_AGENT, "qemu-guest-agent unavailable, using the host's qemu-ga");
            Ok(PathBuf::from(HOST_AGENT))
        }
        Err(err) => Err(err),
    }
}
