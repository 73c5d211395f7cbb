//! Running helper programs (`qemu-img`, `qemu-system-*`) with argument
//! vectors, never through a shell, so no path or name is ever re-parsed.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use ironidc_core::engine::EngineError;
use tokio::process::Command;

/// What a finished program printed on stdout.
pub(crate) struct Finished {
    pub stdout: Vec<u8>,
}

/// Run `program args…` to completion within `timeout`, with stdin closed and
/// stdout/stderr captured. A non-zero exit becomes `EngineError::Command`
/// carrying stderr; a program that cannot be started means the engine is not
/// usable here (`Unavailable`).
pub(crate) async fn run<I, S>(
    program: &Path,
    args: I,
    timeout: Duration,
) -> Result<Finished, EngineError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A timed-out future drops the child: do not leave it running.
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| not_started(program, &e))?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(res) => res.map_err(|e| EngineError::io(program.display().to_string(), e))?,
        Err(_) => {
            return Err(EngineError::Command {
                program: program_name(program),
                status: format!("timed out after {} s", timeout.as_secs()),
                stderr: String::new(),
            })
        }
    };
    if !output.status.success() {
        return Err(EngineError::Command {
            program: program_name(program),
            status: output.status.to_string(),
            stderr: stderr_text(&output.stderr),
        });
    }
    Ok(Finished {
        stdout: output.stdout,
    })
}

pub(crate) fn not_started(program: &Path, e: &std::io::Error) -> EngineError {
    EngineError::Unavailable(format!("cannot run {}: {e}", program.display()))
}

pub(crate) fn program_name(program: &Path) -> String {
    program.display().to_string()
}

/// Stderr as one trimmed string, bounded so a chatty failure cannot flood an
/// error message or a task row.
pub(crate) fn stderr_text(bytes: &[u8]) -> String {
    const MAX: usize = 4096;
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
