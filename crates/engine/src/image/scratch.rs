//! Temporary files and directories that disappear unless the step that made them succeeds:
//! whatever a failed build leaves behind must not look like a finished artefact.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::ImageError;

/// A name unique within this host for the life of this process: concurrent builds (threads
/// or processes) sharing one cache or output directory never collide.
pub(crate) fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{prefix}.{}.{n}.tmp", std::process::id())
}

/// Removes a path (file or directory tree) when dropped, unless [`Scratch::keep`] was called.
#[derive(Debug)]
pub(crate) struct Scratch {
    path: PathBuf,
    armed: bool,
}

impl Scratch {
    /// Create a fresh, empty directory `parent/<unique name>`.
    pub fn new_dir(parent: &Path, prefix: &str) -> Result<Self, ImageError> {
        let path = parent.join(unique_name(prefix));
        std::fs::create_dir_all(&path).map_err(ImageError::io("create directory", &path))?;
        Ok(Scratch { path, armed: true })
    }

    /// Reserve the path `parent/<unique name>` for a file the caller creates.
    pub fn new_file(parent: &Path, prefix: &str) -> Self {
        Scratch {
            path: parent.join(unique_name(prefix)),
            armed: true,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Move the scratch path to `dest` and stop guarding it. A file replaces whatever file
    /// `dest` was (atomically: `rename`). A directory does not replace one: if another
    /// build put `dest` there first, ours is dropped and theirs is kept (both are
    /// equivalent).
    pub fn persist_as(mut self, dest: &Path) -> Result<(), ImageError> {
        match std::fs::rename(&self.path, dest) {
            Ok(()) => {
                self.armed = false;
                Ok(())
            }
            Err(_) if dest.exists() => Ok(()),
            Err(source) => Err(ImageError::Io {
                action: "rename into place",
                path: dest.to_path_buf(),
                source,
            }),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let result = if self.path.is_dir() {
            std::fs::remove_dir_all(&self.path)
        } else {
            std::fs::remove_file(&self.path)
        };
        if let Err(err) = result {
            if err.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), %err, "could not remove scratch path");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn dropped_scratch_is_removed_and_persisted_one_stays() {
        let parent = tempfile::tempdir().unwrap();
        let dropped = Scratch::new_dir(parent.path(), "a").unwrap();
        std::fs::write(dropped.path().join("f"), b"x").unwrap();
        let dropped_path = dropped.path().to_path_buf();
        drop(dropped);
        assert!(!dropped_path.exists());

        let kept = Scratch::new_dir(parent.path(), "b").unwrap();
        let dest = parent.path().join("kept");
        kept.persist_as(&dest).unwrap();
        assert!(dest.is_dir());
    }
}
