//! What the engine's integration tests share: the check for the programs a
//! test runs, tiny boot-sector guests, a host in a temporary directory that
//! never lets a guest outlive its test, the engine forced to TCG with a few
//! ways to drive it and look at what it made, and where the demo-image tests
//! cache downloaded packages.
//!
//! Each test file is a crate of its own and uses only part of this.
#![allow(dead_code)]

pub mod engine;
pub mod guest;
pub mod host;
pub mod tools;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

pub const MIB: u64 = 1024 * 1024;
/// How long a power action or a boot of a tiny guest may take under TCG.
pub const LONG: Duration = Duration::from_secs(30);

/// `$IRONIDC_IMAGE_CACHE`, else `target/ironidc-image-cache`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("IRONIDC_IMAGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ironidc-image-cache")
        })
}

/// Kills QEMU however the test ends, so no guest outlives it.
pub struct Qemu(pub Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
