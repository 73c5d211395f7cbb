//! Host programs the image builder runs, each tied to the Debian package that provides it,
//! so a missing program turns into "install package X" instead of a bare ENOENT.
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::error::ImageError;

#[derive(Debug, Clone, Copy)]
pub(crate) struct HostTool {
    pub program: &'static str,
    pub package: &'static str,
}

pub(crate) const APT_CACHE: HostTool = HostTool {
    program: "apt-cache",
    package: "apt",
};
pub(crate) const APT_GET: HostTool = HostTool {
    program: "apt-get",
    package: "apt",
};
pub(crate) const DPKG_DEB: HostTool = HostTool {
    program: "dpkg-deb",
    package: "dpkg",
};
pub(crate) const XZ: HostTool = HostTool {
    program: "xz",
    package: "xz-utils",
};
pub(crate) const ZSTD: HostTool = HostTool {
    program: "zstd",
    package: "zstd",
};
pub(crate) const GZIP: HostTool = HostTool {
    program: "gzip",
    package: "gzip",
};
pub(crate) const MKFS_VFAT: HostTool = HostTool {
    program: "mkfs.vfat",
    package: "dosfstools",
};
pub(crate) const MCOPY: HostTool = HostTool {
    program: "mcopy",
    package: "mtools",
};
pub(crate) const SYSLINUX: HostTool = HostTool {
    program: "syslinux",
    package: "syslinux",
};
pub(crate) const QEMU_IMG: HostTool = HostTool {
    program: "qemu-img",
    package: "qemu-utils",
};

/// Directories searched after `$PATH`: an unprivileged user's `$PATH` often lacks the sbin
/// directories, where `mkfs.vfat` lives.
const EXTRA_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];

impl HostTool {
    /// Full path of the program, or `MissingTool` naming the package to install.
    pub fn locate(&self) -> Result<PathBuf, ImageError> {
        let path_dirs =
            std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
        path_dirs
            .unwrap_or_default()
            .into_iter()
            .chain(EXTRA_DIRS.iter().map(PathBuf::from))
            .map(|dir| dir.join(self.program))
            .find(|candidate| is_executable(candidate))
            .ok_or(ImageError::MissingTool {
                program: self.program,
                package: self.package,
            })
    }

    /// A command for this program with a predictable environment: no stdin (nothing may
    /// prompt), C locale (we parse apt's output).
    pub fn command(&self) -> Result<Command, ImageError> {
        let mut cmd = Command::new(self.locate()?);
        cmd.stdin(Stdio::null()).env("LC_ALL", "C");
        Ok(cmd)
    }

    /// Run with these arguments; return stdout, or `CommandFailed` with stderr.
    pub fn run(&self, args: &[&OsStr]) -> Result<Vec<u8>, ImageError> {
        let mut cmd = self.command()?;
        cmd.args(args);
        self.output(cmd)
    }

    /// Run a prepared command (from [`HostTool::command`]); return stdout.
    pub fn output(&self, mut cmd: Command) -> Result<Vec<u8>, ImageError> {
        let out = cmd.output().map_err(|source| ImageError::Spawn {
            program: self.program,
            source,
        })?;
        self.check(&cmd, out)
    }

    /// Like [`HostTool::output`], with `input` written to the program's stdin.
    pub fn output_with_input(&self, mut cmd: Command, input: &[u8]) -> Result<Vec<u8>, ImageError> {
        use std::io::Write;
        let spawn_error = |source| ImageError::Spawn {
            program: self.program,
            source,
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(spawn_error)?;
        // Written from another thread: a program that fills its stdout or stderr pipe
        // before reading all its input would otherwise block us both.
        let writer = child.stdin.take().map(|mut stdin| {
            let input = input.to_vec();
            std::thread::spawn(move || stdin.write_all(&input))
        });
        let out = child.wait_with_output().map_err(spawn_error)?;
        let written = writer.map_or(Ok(()), |writer| {
            writer
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("stdin writer panicked")))
        });
        // A program that fails early breaks the pipe: its status and stderr say more.
        let stdout = self.check(&cmd, out)?;
        written.map_err(|source| ImageError::Input {
            program: self.program,
            source,
        })?;
        Ok(stdout)
    }

    fn check(&self, cmd: &Command, out: std::process::Output) -> Result<Vec<u8>, ImageError> {
        if out.status.success() {
            return Ok(out.stdout);
        }
        let args = cmd
            .get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        Err(ImageError::CommandFailed {
            program: self.program,
            args,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn missing_program_names_its_package() {
        let tool = HostTool {
            program: "ironidc-no-such-program",
            package: "ironidc-pkg",
        };
        let err = tool.locate().unwrap_err();
        assert!(
            err.to_string()
                .contains("install the Debian package `ironidc-pkg`"),
            "{err}"
        );
    }

    #[test]
    fn failing_program_reports_status_and_stderr() {
        let sh = HostTool {
            program: "sh",
            package: "dash",
        };
        let err = sh
            .run(&[OsStr::new("-c"), OsStr::new("echo oops >&2; exit 3")])
            .unwrap_err();
        match err {
            ImageError::CommandFailed { status, stderr, .. } => {
                assert_eq!(status.code(), Some(3));
                assert_eq!(stderr, "oops");
            }
            other => panic!("unexpected {other}"),
        }
    }
}
