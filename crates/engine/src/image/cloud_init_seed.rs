//! NoCloud seeds: the small FAT disk labelled `CIDATA` that cloud-init (and the demo
//! guest) reads its instance's `meta-data`, `user-data` and `network-config` from. It is
//! attached as an extra disk as it is, a raw image: no qcow2, no boot loader.
use std::path::Path;

use super::demo::output_dir;
use super::error::ImageError;
use super::fat_disk::{FatDisk, FatLayout, MIB};
use super::scratch::Scratch;

/// The volume label NoCloud looks for (`cidata` works too; FAT stores labels upper case).
pub const SEED_VOLUME_LABEL: &str = "CIDATA";

/// Room for the FAT tables, the root directory and cluster slack of three files, on the
/// few-MiB FAT12/16 file systems seeds get.
const SEED_OVERHEAD: u64 = 64 * 1024;

/// The files of a NoCloud seed, as text (cloud-init reads YAML, or a script for
/// `user-data`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeedFiles {
    pub meta_data: String,
    pub user_data: String,
    /// Left out of the seed when empty: cloud-init takes a `network-config` file, even an
    /// empty one, as the instance's whole network configuration.
    pub network_config: String,
}

impl SeedFiles {
    /// File names in the seed and their contents, in the order they are written.
    fn entries(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("meta-data", self.meta_data.as_str()),
            ("user-data", self.user_data.as_str()),
            ("network-config", self.network_config.as_str()),
        ]
        .into_iter()
        .filter(|(name, text)| *name != "network-config" || !text.is_empty())
    }
}

/// Write a NoCloud seed: a small raw FAT image with volume label CIDATA holding meta-data,
/// user-data and network-config (file mode 0600; it may hold password hashes). Replaces
/// `path` atomically (write to a temp file next to it, then rename).
///
/// The image is 1 MiB, or as many whole MiB as its files need. Blocking: it runs
/// `mkfs.vfat` and `mcopy` (Debian packages dosfstools and mtools).
pub fn write_seed(path: &Path, files: &SeedFiles) -> Result<(), ImageError> {
    let dir = output_dir(path)?;
    let payload: u64 = files.entries().map(|(_, text)| text.len() as u64).sum();
    let layout = FatLayout {
        size_mb: (payload + SEED_OVERHEAD).div_ceil(MIB).max(1),
        label: SEED_VOLUME_LABEL,
        overhead_bytes: SEED_OVERHEAD,
    };
    let scratch = Scratch::new_file(dir, "cidata");
    let disk = FatDisk::create(scratch.path(), &layout, payload)?;
    for (name, text) in files.entries() {
        disk.write_file(name, text.as_bytes())?;
    }
    std::fs::File::open(disk.path())
        .and_then(|file| file.sync_all())
        .map_err(ImageError::io("sync", disk.path()))?;
    scratch.persist_as(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    use super::*;

    /// `mtools` on the seed image (`mdir`, `mtype`, ...), as text.
    fn mtool(program: &str, image: &Path, args: &[&str]) -> String {
        let out = Command::new(program)
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(image)
            .args(args)
            .output()
            .unwrap_or_else(|err| panic!("run {program}: {err}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Writes a seed, or returns None (skip) where dosfstools or mtools are missing.
    fn write_or_skip(path: &Path, files: &SeedFiles) -> Option<()> {
        match write_seed(path, files) {
            Ok(()) => Some(()),
            Err(err @ ImageError::MissingTool { .. }) if std::env::var_os("CI").is_none() => {
                eprintln!("skipping: {err}");
                None
            }
            Err(err) => panic!("write_seed: {err:?}"),
        }
    }

    #[test]
    fn seed_is_a_private_cidata_fat_image_with_the_three_files() {
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("seed.img");
        let files = SeedFiles {
            meta_data: "instance-id: t1\nlocal-hostname: seeded-guest\n".into(),
            user_data: "#cloud-config\npassword: $6$salt$hash\n".into(),
            network_config: "version: 2\nethernets: {}\n".into(),
        };
        let Some(()) = write_or_skip(&seed, &files) else {
            return;
        };

        let meta = std::fs::metadata(&seed).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), MIB);
        let listing = mtool("mdir", &seed, &["::"]);
        assert!(listing.contains("is CIDATA"), "label missing: {listing}");
        for (name, text) in [
            ("meta-data", &files.meta_data),
            ("user-data", &files.user_data),
            ("network-config", &files.network_config),
        ] {
            assert_eq!(&mtool("mtype", &seed, &[&format!("::{name}")]), text);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["seed.img"], "scratch files left behind");
    }

    #[test]
    fn rewriting_replaces_the_seed_and_grows_it_for_big_files() {
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("seed.img");
        let first = SeedFiles {
            meta_data: "instance-id: a\n".into(),
            ..SeedFiles::default()
        };
        let Some(()) = write_or_skip(&seed, &first) else {
            return;
        };
        let listing = mtool("mdir", &seed, &["-b", "::"]);
        assert!(!listing.contains("network-config"), "{listing}");

        let big = SeedFiles {
            meta_data: "instance-id: b\n".into(),
            user_data: "#!/bin/sh\n".to_string() + &"# padding\n".repeat(150_000),
            network_config: String::new(),
        };
        write_seed(&seed, &big).unwrap();
        assert_eq!(std::fs::metadata(&seed).unwrap().len(), 2 * MIB);
        assert_eq!(mtool("mtype", &seed, &["::meta-data"]), big.meta_data);
        assert_eq!(mtool("mtype", &seed, &["::user-data"]), big.user_data);
    }

    #[test]
    fn seed_path_needs_a_file_name() {
        let err = write_seed(Path::new("/"), &SeedFiles::default()).unwrap_err();
        assert!(matches!(err, ImageError::BadOutputPath { .. }), "{err}");
    }
}
