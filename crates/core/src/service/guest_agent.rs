//! Operations inside a running guest through the QEMU guest agent: password
//! reset, hostname, file write, command execution, network interfaces.
//! Every call names the VM; without an answering agent the engine's
//! `AgentUnavailable` becomes 503 with that reason.

use std::time::Duration;

use super::journal::Subject;
use super::{Actor, Services};
use crate::engine::GuestInterface;
use crate::error::CoreError;
use crate::model::{Host, Vm};

/// Longest a command may run through `exec`.
pub const MAX_EXEC_TIMEOUT_SECS: u64 = 300;
/// Largest file `write_guest_file` takes.
pub const MAX_GUEST_FILE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ExecView {
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// Output as text (invalid UTF-8 replaced).
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, Clone)]
pub struct ExecInput {
    pub program: String,
    pub args: Vec<String>,
    pub stdin: Option<Vec<u8>>,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone)]
pub struct AgentStatus {
    pub available: bool,
    pub message: String,
}

impl Services {
    /// The host and VM for an agent operation that changes the guest.
    async fn agent_target(
        &self,
        actor: &Actor,
        action: &'static str,
        hs_name: &str,
        vm_uuid: &str,
    ) -> Result<(Host, Vm), CoreError> {
        let (host, vm) = self
            .owned_vm(actor, "vm.agent.write", Some(action), hs_name, vm_uuid)
            .await?;
        self.refuse_if_busy(actor, &vm, action, hs_name).await?;
        Ok((host, vm))
    }

    /// Whether the guest agent answers.
    pub async fn agent_status(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
    ) -> Result<AgentStatus, CoreError> {
        let (host, _vm) = self
            .owned_vm(actor, "vm.instance.read", None, hs_name, vm_uuid)
            .await?;
        let res = self
            .engine_of(&host)?
            .agent_ping(&self.host_context(&host), vm_uuid, Duration::from_secs(3))
            .await;
        Ok(match res {
            Ok(()) => AgentStatus {
                available: true,
                message: "the guest agent answers".into(),
            },
            Err(e) => AgentStatus {
                available: false,
                message: e.to_string(),
            },
        })
    }

    /// Set a guest user's password (default `root`). For root the stored
    /// password follows, so the seed of the next boot agrees.
    pub async fn reset_guest_password(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        user: Option<&str>,
        password: &str,
    ) -> Result<(), CoreError> {
        let action = "vm.agent.password";
        let (host, vm) = self.agent_target(actor, action, hs_name, vm_uuid).await?;
        let user = user.filter(|u| !u.is_empty()).unwrap_or("root").to_string();
        let checked = check_guest_user(&user)
            .and_then(|()| crate::validate::vm_password("password", password));
        self.run_audited(
            actor,
            action,
            Subject::vm(hs_name, vm_uuid),
            checked,
            async |(), _op| {
                self.engine_of(&host)?
                    .agent_set_password(&self.host_context(&host), vm_uuid, &user, password)
                    .await?;
                if user == "root" {
                    let sealed = self.inner.secrets.seal(password)?;
                    self.store().set_vm_password(vm.id, &sealed).await?;
                    let fresh = self.vm(&host, vm_uuid).await?;
                    self.write_seed(&host, &fresh).await;
                }
                Ok(())
            },
            |()| serde_json::json!({"user": user}),
        )
        .await
    }

    /// Set the guest's hostname now and in /etc/hostname.
    pub async fn set_guest_hostname(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        hostname: &str,
    ) -> Result<(), CoreError> {
        let action = "vm.agent.hostname";
        let (host, _vm) = self.agent_target(actor, action, hs_name, vm_uuid).await?;
        let checked = check_hostname(hostname);
        self.run_audited(
            actor,
            action,
            Subject::vm(hs_name, vm_uuid),
            checked,
            async |(), _op| {
                // The name travels as a positional parameter, never inside
                // the script text, so no value can change the command.
                let args = vec![
                    "-c".to_string(),
                    "hostname \"$1\" && printf '%s\\n' \"$1\" > /etc/hostname".to_string(),
                    "sh".to_string(),
                    hostname.to_string(),
                ];
                let out = self
                    .engine_of(&host)?
                    .agent_exec(
                        &self.host_context(&host),
                        vm_uuid,
                        "/bin/sh",
                        &args,
                        None,
                        Duration::from_secs(20),
                    )
                    .await?;
                if out.exit_code != Some(0) {
                    return Err(CoreError::Conflict(format!(
                        "setting the hostname failed in the guest (exit {:?}): {}",
                        out.exit_code,
                        String::from_utf8_lossy(&out.stderr).trim()
                    )));
                }
                Ok(())
            },
            |()| serde_json::json!({"hostname": hostname}),
        )
        .await
    }

    /// Write a file in the guest (created or replaced).
    pub async fn write_guest_file(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        path: &str,
        content: &[u8],
    ) -> Result<(), CoreError> {
        let action = "vm.agent.file";
        let (host, _vm) = self.agent_target(actor, action, hs_name, vm_uuid).await?;
        let checked = check_guest_path(path).and_then(|()| {
            if content.len() > MAX_GUEST_FILE_BYTES {
                Err(CoreError::invalid(
                    "content",
                    format!("at most {MAX_GUEST_FILE_BYTES} bytes"),
                ))
            } else {
                Ok(())
            }
        });
        self.run_audited(
            actor,
            action,
            Subject::vm(hs_name, vm_uuid),
            checked,
            async |(), _op| {
                self.engine_of(&host)?
                    .agent_write_file(&self.host_context(&host), vm_uuid, path, content)
                    .await?;
                Ok(())
            },
            |()| serde_json::json!({"path": path, "bytes": content.len()}),
        )
        .await
    }

    /// Run a program in the guest and return its exit code and output.
    pub async fn exec_in_guest(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
        input: ExecInput,
    ) -> Result<ExecView, CoreError> {
        let action = "vm.agent.exec";
        let (host, _vm) = self.agent_target(actor, action, hs_name, vm_uuid).await?;
        let checked = check_exec(&input);
        self.run_audited(
            actor,
            action,
            Subject::vm(hs_name, vm_uuid),
            checked,
            async |(), _op| {
                let out = self
                    .engine_of(&host)?
                    .agent_exec(
                        &self.host_context(&host),
                        vm_uuid,
                        &input.program,
                        &input.args,
                        input.stdin.as_deref(),
                        Duration::from_secs(input.timeout_secs),
                    )
                    .await?;
                Ok(ExecView {
                    exit_code: out.exit_code,
                    timed_out: out.timed_out,
                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                })
            },
            // The program is logged, its arguments are not: they may hold secrets.
            |v| serde_json::json!({"program": input.program, "exit_code": v.exit_code, "timed_out": v.timed_out}),
        )
        .await
    }

    /// The guest's network interfaces as its agent reports them.
    pub async fn guest_interfaces(
        &self,
        actor: &Actor,
        hs_name: &str,
        vm_uuid: &str,
    ) -> Result<Vec<GuestInterface>, CoreError> {
        let (host, _vm) = self
            .owned_vm(actor, "vm.instance.read", None, hs_name, vm_uuid)
            .await?;
        Ok(self
            .engine_of(&host)?
            .agent_interfaces(&self.host_context(&host), vm_uuid)
            .await?)
    }
}

fn check_guest_user(user: &str) -> Result<(), CoreError> {
    let ok = user.len() <= 32
        && user
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && user
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "user",
            "must be a Linux user name ([a-z_][a-z0-9_-]{0,31})",
        ))
    }
}

fn check_hostname(name: &str) -> Result<(), CoreError> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "hostname",
            "must be letters, digits and dashes in dot-separated labels of up to 63 characters",
        ))
    }
}

fn check_guest_path(path: &str) -> Result<(), CoreError> {
    if !path.starts_with('/') || path.len() > 4096 || path.contains('\0') || path.ends_with('/') {
        return Err(CoreError::invalid(
            "path",
            "must be an absolute file path of at most 4096 bytes",
        ));
    }
    Ok(())
}

fn check_exec(input: &ExecInput) -> Result<(), CoreError> {
    if input.program.is_empty() || input.program.contains('\0') || input.program.len() > 4096 {
        return Err(CoreError::invalid(
            "command",
            "must be a program path or name",
        ));
    }
    if input.args.iter().any(|a| a.contains('\0')) || input.args.len() > 256 {
        return Err(CoreError::invalid(
            "args",
            "at most 256 arguments without NUL bytes",
        ));
    }
    if input.timeout_secs == 0 || input.timeout_secs > MAX_EXEC_TIMEOUT_SECS {
        return Err(CoreError::invalid(
            "timeout",
            format!("must be 1 to {MAX_EXEC_TIMEOUT_SECS} seconds"),
        ));
    }
    if input
        .stdin
        .as_ref()
        .is_some_and(|s| s.len() > MAX_GUEST_FILE_BYTES)
    {
        return Err(CoreError::invalid(
            "stdin",
            format!("at most {MAX_GUEST_FILE_BYTES} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_inputs_are_checked() {
        assert!(check_guest_user("root").is_ok());
        assert!(check_guest_user("Root").is_err());
        assert!(check_guest_user("a:b").is_err());
        assert!(check_hostname("web-1.example").is_ok());
        assert!(check_hostname("bad_name").is_err());
        assert!(check_hostname("-x").is_err());
        assert!(check_hostname("a;reboot").is_err());
        assert!(check_guest_path("/etc/motd").is_ok());
        assert!(check_guest_path("etc/motd").is_err());
        assert!(check_guest_path("/tmp/").is_err());
    }
}
