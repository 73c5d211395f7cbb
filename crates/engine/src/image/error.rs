//! What can go wrong while building an image.
use std::path::PathBuf;
use std::process::ExitStatus;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A host program is not installed; `package` is the Debian package that provides it.
    #[error("program `{program}` not found; install the Debian package `{package}`")]
    MissingTool {
        program: &'static str,
        package: &'static str,
    },

    #[error("could not start `{program}`")]
    Spawn {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("could not write the input of `{program}`")]
    Input {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("`{program} {args}` failed ({status}): {stderr}")]
    CommandFailed {
        program: &'static str,
        args: String,
        status: ExitStatus,
        stderr: String,
    },

    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// apt does not know the package (no `apt-get update` yet, or another distribution).
    #[error("apt knows no package `{package}`; run `apt-get update`?")]
    UnknownPackage { package: String },

    #[error("apt printed a package name or version we do not accept: `{value}`")]
    SuspiciousAptOutput { value: String },

    #[error("meta package `{meta}` depends on no linux-image package")]
    NoKernelPackage { meta: String },

    #[error("package `{package}` does not contain {what}")]
    MissingInPackage { package: String, what: String },

    #[error("kernel {kernel_version} has no module `{module}`, neither built in nor as a file")]
    ModuleNotFound {
        kernel_version: String,
        module: String,
    },

    #[error("{path} is not a kernel module we can read: {reason}")]
    BadModule { path: PathBuf, reason: &'static str },

    /// A shared library a program of the guest needs is not on this host.
    #[error("{program} needs the shared library `{library}`, found in none of {searched}")]
    MissingLibrary {
        program: PathBuf,
        library: String,
        searched: String,
    },

    #[error("{path} is not an x86-64 ELF program or library")]
    NotAnExecutable { path: PathBuf },

    #[error("a {size_mb} MiB disk is too small for {needed_bytes} bytes of boot files")]
    DiskTooSmall { size_mb: u64, needed_bytes: u64 },

    #[error("output path {path} has no file name or parent directory")]
    BadOutputPath { path: PathBuf },
}

impl ImageError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ImageError::Io {
            action,
            path,
            source,
        }
    }
}
