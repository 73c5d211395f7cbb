//! Debian packages fetched with `apt-get download` and unpacked with `dpkg-deb -x`, without
//! installing them, into a cache directory that later builds reuse without the network.
//!
//! Layout of the cache:
//! - `debs/<name>_<version>.deb` — the downloaded archives;
//! - `pkg/<name>_<version>/` — their unpacked contents, renamed into place only when complete.
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::error::ImageError;
use super::host_tool::{APT_CACHE, APT_GET, DPKG_DEB};
use super::scratch::Scratch;

/// One version of one package, as apt's candidate for installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackageVersion {
    pub name: String,
    pub version: String,
}

impl PackageVersion {
    /// File-name form; ':' (the epoch separator) is escaped the way apt names its downloads.
    fn file_stem(&self) -> String {
        format!("{}_{}", self.name, self.version.replace(':', "%3a"))
    }

    fn spec(&self) -> String {
        format!("{}={}", self.name, self.version)
    }
}

pub(crate) struct PackageCache {
    root: PathBuf,
}

impl PackageCache {
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        for dir in [root.join("debs"), root.join("pkg")] {
            std::fs::create_dir_all(&dir)
                .map_err(ImageError::io("create cache directory", &dir))?;
        }
        Ok(PackageCache {
            root: root.to_path_buf(),
        })
    }

    /// The version of `package` apt would install (from the local package lists; no network).
    pub fn candidate(&self, package: &str) -> Result<PackageVersion, ImageError> {
        let stanza = apt_cache_show(package)?;
        let version = field(&stanza, "Version").ok_or_else(|| ImageError::UnknownPackage {
            package: package.into(),
        })?;
        Ok(PackageVersion {
            name: checked_name(package)?,
            version: checked_version(&version)?,
        })
    }

    /// The real kernel package behind a meta package such as `linux-image-cloud-amd64`:
    /// the meta package holds no kernel, only a dependency on `linux-image-<abi>-<flavour>`.
    pub fn kernel_behind(&self, meta: &str) -> Result<PackageVersion, ImageError> {
        let stanza = apt_cache_show(meta)?;
        let depends = field(&stanza, "Depends").unwrap_or_default();
        let kernel = kernel_dependency(&depends)
            .ok_or_else(|| ImageError::NoKernelPackage { meta: meta.into() })?;
        self.candidate(&kernel)
    }

    /// Directory holding the unpacked package; downloads and unpacks it unless cached.
    pub fn unpacked(&self, package: &PackageVersion) -> Result<PathBuf, ImageError> {
        let dest = self.root.join("pkg").join(package.file_stem());
        if dest.is_dir() {
            return Ok(dest);
        }
        let deb = self.downloaded(package)?;
        let staging = Scratch::new_dir(&self.root.join("pkg"), "unpack")?;
        DPKG_DEB.run(&[
            OsStr::new("-x"),
            deb.as_os_str(),
            staging.path().as_os_str(),
        ])?;
        staging.persist_as(&dest)?;
        Ok(dest)
    }

    /// Path of the package's `.deb` in the cache, downloading it if missing.
    fn downloaded(&self, package: &PackageVersion) -> Result<PathBuf, ImageError> {
        let deb = self
            .root
            .join("debs")
            .join(format!("{}.deb", package.file_stem()));
        if deb.is_file() {
            return Ok(deb);
        }
        // apt-get download writes into the current directory under a name of its own:
        // give it an empty directory and take the one file it leaves there.
        let staging = Scratch::new_dir(&self.root.join("debs"), "download")?;
        let mut cmd = APT_GET.command()?;
        cmd.arg("download")
            .arg(package.spec())
            .current_dir(staging.path());
        APT_GET.output(cmd)?;
        let fetched =
            single_deb_in(staging.path()).ok_or_else(|| ImageError::MissingInPackage {
                package: package.spec(),
                what: "a downloaded .deb".into(),
            })?;
        std::fs::rename(&fetched, &deb)
            .map_err(ImageError::io("move download into cache", &deb))?;
        Ok(deb)
    }
}

fn apt_cache_show(package: &str) -> Result<String, ImageError> {
    let name = checked_name(package)?;
    match APT_CACHE.run(&[
        OsStr::new("show"),
        OsStr::new("--no-all-versions"),
        OsStr::new(&name),
    ]) {
        Ok(out) => Ok(String::from_utf8_lossy(&out).into_owned()),
        Err(ImageError::CommandFailed { stderr, .. })
            if stderr.contains("No packages found") || stderr.contains("Unable to locate") =>
        {
            Err(ImageError::UnknownPackage { package: name })
        }
        Err(other) => Err(other),
    }
}

/// Value of `name:` in the first stanza of a deb822 text (continuation lines ignored:
/// the fields we read are single-line).
fn field(stanza: &str, name: &str) -> Option<String> {
    stanza
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(|value| value.trim().to_string())
}

/// First `linux-image-*` package named in a Depends field, e.g. from
/// `linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)`.
fn kernel_dependency(depends: &str) -> Option<String> {
    depends
        .split([',', '|'])
        .filter_map(|alternative| alternative.split_whitespace().next())
        .find(|name| name.starts_with("linux-image-"))
        .map(str::to_string)
}

/// Names we pass to apt and use as path components: Debian policy's package-name syntax.
fn checked_name(name: &str) -> Result<String, ImageError> {
    let ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    if ok {
        Ok(name.to_string())
    } else {
        Err(ImageError::SuspiciousAptOutput { value: name.into() })
    }
}

/// Debian version syntax (epoch:upstream-revision), which never contains a '/'.
fn checked_version(version: &str) -> Result<String, ImageError> {
    let ok = !version.is_empty()
        && version.starts_with(|c: char| c.is_ascii_digit())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".+~:-".contains(c));
    if ok {
        Ok(version.to_string())
    } else {
        Err(ImageError::SuspiciousAptOutput {
            value: version.into(),
        })
    }
}

fn single_deb_in(dir: &Path) -> Option<PathBuf> {
    let mut debs = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension() == Some(OsStr::new("deb")));
    let first = debs.next()?;
    debs.next().is_none().then_some(first)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const META: &str = "Package: linux-image-cloud-amd64\nSource: linux-signed-amd64 (6.1.192+2)\n\
        Version: 6.1.192-2\nDepends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)\n\n\
        Package: linux-image-cloud-amd64\nVersion: 6.1.176-1\n";

    #[test]
    fn reads_fields_of_the_first_stanza_only() {
        assert_eq!(field(META, "Version").as_deref(), Some("6.1.192-2"));
        assert_eq!(
            field(META, "Depends").as_deref(),
            Some("linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)")
        );
        assert_eq!(
            field(META, "Source").as_deref(),
            Some("linux-signed-amd64 (6.1.192+2)")
        );
        assert_eq!(field(META, "Missing"), None);
    }

    #[test]
    fn finds_the_kernel_among_dependencies() {
        assert_eq!(
            kernel_dependency("linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)").as_deref(),
            Some("linux-image-6.1.0-56-cloud-amd64")
        );
        assert_eq!(
            kernel_dependency("initramfs-tools | linux-initramfs-tool, linux-image-6.12.9-cloud-amd64-unsigned (= 1)")
                .as_deref(),
            Some("linux-image-6.12.9-cloud-amd64-unsigned")
        );
        assert_eq!(kernel_dependency("libc6 (>= 2.36)"), None);
    }

    #[test]
    fn refuses_names_that_could_escape_the_cache() {
        assert!(checked_name("busybox-static").is_ok());
        assert!(checked_name("../etc").is_err());
        assert!(checked_name("a/b").is_err());
        assert!(checked_version("1:1.35.0-4+deb12u1+b1").is_ok());
        assert!(checked_version("1/../../x").is_err());
    }

    #[test]
    fn file_names_escape_the_epoch() {
        let p = PackageVersion {
            name: "busybox-static".into(),
            version: "1:1.35.0-4".into(),
        };
        assert_eq!(p.file_stem(), "busybox-static_1%3a1.35.0-4");
        assert_eq!(p.spec(), "busybox-static=1:1.35.0-4");
    }
}
