//! A client of the QEMU guest agent (qemu-ga) over a unix socket.
//!
//! The protocol is newline-delimited JSON, like QMP, but without a greeting
//! and with a channel that outlives its clients: the agent in the guest keeps
//! running while clients come and go, so replies meant for an earlier,
//! abandoned client can still be in the pipe, and its JSON parser may hold
//! half a request. Every connection therefore starts with a resync: a raw
//! 0xFF byte (resets the agent's parser), then `guest-sync-delimited` with a
//! random id; everything up to the reply carrying that id is discarded.
//!
//! Each request carries an `id` the agent echoes, and every read has a
//! deadline. Nothing arriving in time means no agent is listening (none
//! installed, not started yet, guest busy booting): `AgentUnavailable`.
//!
//! The typed operations (`exec`, `read_file`, …) live here too, so they can
//! be tested against a real `qemu-ga` on the host without a VM.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ironidc_core::engine::{EngineError, ExecOutput, GuestInterface};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// How long one command may take to be answered, by default.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Captured stdout and stderr of `exec` are each cut at this size.
pub const MAX_CAPTURE: usize = 1024 * 1024;
/// Raw bytes per `guest-file-write`/`guest-file-read`: 48 KiB once in base64,
/// which keeps every message far below the agent's request size limit.
const FILE_CHUNK: usize = 36 * 1024;
/// A reply line longer than this is refused: the agent's own cap on captured
/// output is 16 MiB per stream, i.e. about 43 MiB of base64 for both.
const MAX_LINE: u64 = 48 * 1024 * 1024;
/// Backoff bounds while polling `guest-exec-status`.
const EXEC_POLL_FIRST: Duration = Duration::from_millis(20);
const EXEC_POLL_MAX: Duration = Duration::from_millis(500);
/// After killing a timed-out command: how long we poll to reap it (the agent
/// keeps a finished process's status until someone asks for it).
const REAP_WAIT: Duration = Duration::from_secs(2);

pub struct QgaClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    timeout: Duration,
    next_id: u64,
}

impl QgaClient {
    /// Connect to the agent socket and resynchronize the channel. `timeout`
    /// bounds the connect and the resync, and is then the reply timeout of
    /// every command (see `set_timeout`).
    pub async fn connect(socket: &Path, timeout: Duration) -> Result<Self, EngineError> {
        let stream = tokio::time::timeout(timeout, UnixStream::connect(socket))
            .await
            .map_err(|_| no_reply(timeout))?
            .map_err(|e| {
                EngineError::AgentUnavailable(format!("connecting to {}: {e}", socket.display()))
            })?;
        let (read, writer) = stream.into_split();
        let mut client = Self {
            reader: BufReader::new(read),
            writer,
            timeout,
            next_id: 1,
        };
        client.sync().await?;
        Ok(client)
    }

    /// The reply timeout of later commands.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// `guest-sync-delimited`: the agent answers `0xFF {"return": id}`; all
    /// that comes before (stale replies, the parse error our 0xFF causes) is
    /// skipped.
    async fn sync(&mut self) -> Result<(), EngineError> {
        let id = random_id();
        let mut request = vec![0xFF];
        request.extend_from_slice(
            json!({"execute": "guest-sync-delimited", "arguments": {"id": id}})
                .to_string()
                .as_bytes(),
        );
        request.push(b'\n');
        let deadline = Instant::now() + self.timeout;
        self.send(&request, deadline).await?;
        loop {
            let line = self.read_line(deadline).await?;
            // The delimiter opens the line of the sync reply; a stale sync
            // reply has one too, so the id decides.
            let start = line.iter().rposition(|b| *b == 0xFF).map_or(0, |i| i + 1);
            let Ok(message) = serde_json::from_slice::<Value>(&line[start..]) else {
                continue;
            };
            if message.get("return").and_then(Value::as_u64) == Some(id) {
                return Ok(());
            }
            tracing::debug!(%message, "guest agent: skipped a stale message while syncing");
        }
    }

    /// Run `command` and return its `return` value. An `{"error":…}` reply
    /// becomes `EngineError::Agent("<class>: <desc>")`.
    pub async fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, EngineError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({ "execute": command, "id": id });
        if let Some(args) = arguments {
            request["arguments"] = args;
        }
        let mut line = request.to_string().into_bytes();
        line.push(b'\n');
        let deadline = Instant::now() + self.timeout;
        self.send(&line, deadline).await?;
        loop {
            let line = self.read_line(deadline).await?;
            let Ok(message) = serde_json::from_slice::<Value>(&line) else {
                // The tail of a line whose read timed out earlier, say.
                tracing::debug!(line = %String::from_utf8_lossy(&line), "guest agent: skipped a line that is not JSON");
                continue;
            };
            // A reply to an earlier request of ours that we gave up on.
            if message.get("id").is_some_and(|v| v != &json!(id)) {
                continue;
            }
            if let Some(ret) = message.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = message.get("error") {
                let class = err
                    .get("class")
                    .and_then(Value::as_str)
                    .unwrap_or("GenericError");
                let desc = err.get("desc").and_then(Value::as_str).unwrap_or("");
                return Err(EngineError::Agent(format!("{class}: {desc}")));
            }
            return Err(EngineError::Agent(format!(
                "unexpected reply to {command}: {message}"
            )));
        }
    }

    async fn send(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), EngineError> {
        // A guest that never opened its end stops QEMU from reading the
        // socket: a large write then blocks, and the deadline ends it.
        tokio::time::timeout_at(deadline.into(), self.writer.write_all(bytes))
            .await
            .map_err(|_| no_reply(self.timeout))?
            .map_err(|e| EngineError::AgentUnavailable(format!("writing to the agent: {e}")))
    }

    async fn read_line(&mut self, deadline: Instant) -> Result<Vec<u8>, EngineError> {
        let mut line = Vec::new();
        let mut limited = (&mut self.reader).take(MAX_LINE);
        let n = tokio::time::timeout_at(deadline.into(), limited.read_until(b'\n', &mut line))
            .await
            .map_err(|_| no_reply(self.timeout))?
            .map_err(|e| EngineError::AgentUnavailable(format!("reading from the agent: {e}")))?;
        if n == 0 {
            return Err(EngineError::AgentUnavailable(
                "the agent channel was closed".into(),
            ));
        }
        if line.last() != Some(&b'\n') {
            return Err(EngineError::Agent(format!(
                "a reply longer than {MAX_LINE} bytes"
            )));
        }
        Ok(line)
    }

    // ---- typed commands ---------------------------------------------------

    pub async fn ping(&mut self) -> Result<(), EngineError> {
        self.execute("guest-ping", None).await.map(drop)
    }

    /// `guest-set-user-password` with a plain-text password (the guest
    /// hashes it). Validating `user` and `password` is the caller's job.
    pub async fn set_user_password(
        &mut self,
        user: &str,
        password: &str,
    ) -> Result<(), EngineError> {
        self.execute(
            "guest-set-user-password",
            Some(json!({
                "username": user,
                "password": B64.encode(password.as_bytes()),
                "crypted": false,
            })),
        )
        .await
        .map(drop)
    }

    /// Run `program args…` in the guest (found in its `PATH`), feeding
    /// `stdin`, and wait up to `timeout` for it to end. A command still
    /// running then is killed (`kill -9`, as far as the guest has `kill`) and
    /// reported with `timed_out` and no exit code.
    pub async fn exec(
        &mut self,
        program: &str,
        args: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<ExecOutput, EngineError> {
        let mut arguments = json!({"path": program, "arg": args, "capture-output": true});
        if let Some(input) = stdin {
            arguments["input-data"] = B64.encode(input).into();
        }
        let pid = pid_of(&self.execute("guest-exec", Some(arguments)).await?)?;
        let deadline = Instant::now() + timeout;
        let mut pause = EXEC_POLL_FIRST;
        loop {
            let status = self.exec_status(pid).await?;
            if exited(&status) {
                return exec_output(&status, false);
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(EXEC_POLL_MAX);
        }
        tracing::info!(program, pid, "guest command timed out; killing it");
        let killer = self
            .execute(
                "guest-exec",
                Some(json!({"path": "kill", "arg": ["-9", pid.to_string()]})),
            )
            .await
            .and_then(|r| pid_of(&r));
        if let Err(e) = &killer {
            tracing::info!(pid, error = %e, "could not kill a timed-out guest command");
        }
        // Reap both, keeping what the command printed before it died.
        let mut output = ExecOutput {
            timed_out: true,
            ..ExecOutput::default()
        };
        let reap_until = Instant::now() + REAP_WAIT;
        let mut pending = [Some(pid), killer.ok()];
        while pending.iter().any(Option::is_some) && Instant::now() < reap_until {
            tokio::time::sleep(Duration::from_millis(50)).await;
            for slot in &mut pending {
                let Some(p) = *slot else { continue };
                match self.exec_status(p).await {
                    Ok(status) if exited(&status) => {
                        if p == pid {
                            output = exec_output(&status, true)?;
                        }
                        *slot = None;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(pid = p, error = %e, "guest-exec-status after kill");
                        *slot = None;
                    }
                }
            }
        }
        Ok(output)
    }

    async fn exec_status(&mut self, pid: i64) -> Result<Value, EngineError> {
        self.execute("guest-exec-status", Some(json!({ "pid": pid })))
            .await
    }

    /// Create or truncate `path` in the guest and write `content` to it.
    pub async fn write_file(&mut self, path: &str, content: &[u8]) -> Result<(), EngineError> {
        let handle = self.open(path, "w").await?;
        let written = self.write_chunks(handle, content).await;
        // Always close: the agent keeps an open handle (and the file) until then.
        let closed = self.close(handle).await;
        written?;
        closed
    }

    async fn write_chunks(&mut self, handle: i64, content: &[u8]) -> Result<(), EngineError> {
        for chunk in content.chunks(FILE_CHUNK) {
            let mut rest = chunk;
            while !rest.is_empty() {
                let reply = self
                    .execute(
                        "guest-file-write",
                        Some(json!({"handle": handle, "buf-b64": B64.encode(rest)})),
                    )
                    .await?;
                let count = reply
                    .get("count")
                    .and_then(Value::as_u64)
                    .and_then(|c| usize::try_from(c).ok())
                    .unwrap_or(0);
                if count == 0 || count > rest.len() {
                    return Err(EngineError::Agent(format!(
                        "guest-file-write wrote {count} of {} bytes",
                        rest.len()
                    )));
                }
                rest = &rest[count..];
            }
        }
        Ok(())
    }

    /// Up to `max_bytes` of `path` in the guest.
    pub async fn read_file(
        &mut self,
        path: &str,
        max_bytes: usize,
    ) -> Result<Vec<u8>, EngineError> {
        let handle = self.open(path, "r").await?;
        let read = self.read_chunks(handle, max_bytes).await;
        let closed = self.close(handle).await;
        let data = read?;
        closed?;
        Ok(data)
    }

    async fn read_chunks(&mut self, handle: i64, max_bytes: usize) -> Result<Vec<u8>, EngineError> {
        let mut data = Vec::new();
        while data.len() < max_bytes {
            let count = (max_bytes - data.len()).min(FILE_CHUNK);
            let reply = self
                .execute(
                    "guest-file-read",
                    Some(json!({"handle": handle, "count": count})),
                )
                .await?;
            let chunk = decode(reply.get("buf-b64"), "guest-file-read")?;
            // Never trust the guest for the size: keep at most what we asked.
            let take = chunk.len().min(max_bytes - data.len());
            data.extend_from_slice(&chunk[..take]);
            let eof = reply.get("eof").and_then(Value::as_bool).unwrap_or(false);
            if eof || chunk.is_empty() {
                break;
            }
        }
        Ok(data)
    }

    async fn open(&mut self, path: &str, mode: &str) -> Result<i64, EngineError> {
        let reply = self
            .execute("guest-file-open", Some(json!({"path": path, "mode": mode})))
            .await?;
        reply
            .as_i64()
            .ok_or_else(|| EngineError::Agent(format!("guest-file-open returned {reply}")))
    }

    async fn close(&mut self, handle: i64) -> Result<(), EngineError> {
        self.execute("guest-file-close", Some(json!({ "handle": handle })))
            .await
            .map(drop)
    }

    /// The guest's network interfaces with their addresses and counters.
    pub async fn interfaces(&mut self) -> Result<Vec<GuestInterface>, EngineError> {
        let reply = self.execute("guest-network-get-interfaces", None).await?;
        let list = reply.as_array().ok_or_else(|| {
            EngineError::Agent(format!("guest-network-get-interfaces returned {reply}"))
        })?;
        Ok(list.iter().map(interface).collect())
    }
}

fn interface(v: &Value) -> GuestInterface {
    let text = |key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let addresses = v
        .get("ip-addresses")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|a| {
                    let addr = a.get("ip-address").and_then(Value::as_str)?;
                    let prefix = a.get("prefix").and_then(Value::as_u64)?;
                    Some(format!("{addr}/{prefix}"))
                })
                .collect()
        })
        .unwrap_or_default();
    let stat = |key: &str| {
        v.get("statistics")
            .and_then(|s| s.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let mut mac = text("hardware-address").to_ascii_lowercase();
    // Loopback reports 00:00:00:00:00:00; the port says "empty for loopback".
    if mac.bytes().all(|b| b == b'0' || b == b':') {
        mac.clear();
    }
    GuestInterface {
        name: text("name"),
        mac,
        addresses,
        rx_bytes: stat("rx-bytes"),
        tx_bytes: stat("tx-bytes"),
    }
}

fn pid_of(reply: &Value) -> Result<i64, EngineError> {
    reply
        .get("pid")
        .and_then(Value::as_i64)
        .ok_or_else(|| EngineError::Agent(format!("guest-exec returned {reply}")))
}

fn exited(status: &Value) -> bool {
    status.get("exited").and_then(Value::as_bool) == Some(true)
}

/// The output of a finished command. A command killed by a signal has no
/// exit code (`signal` instead of `exitcode`).
fn exec_output(status: &Value, timed_out: bool) -> Result<ExecOutput, EngineError> {
    let mut stdout = decode(status.get("out-data"), "out-data")?;
    let mut stderr = decode(status.get("err-data"), "err-data")?;
    stdout.truncate(MAX_CAPTURE);
    stderr.truncate(MAX_CAPTURE);
    let exit_code = if timed_out || status.get("signal").is_some() {
        None
    } else {
        status
            .get("exitcode")
            .and_then(Value::as_i64)
            .and_then(|c| i32::try_from(c).ok())
    };
    Ok(ExecOutput {
        exit_code,
        stdout,
        stderr,
        timed_out,
    })
}

/// Decode an optional base64 field (absent: no data).
fn decode(field: Option<&Value>, what: &str) -> Result<Vec<u8>, EngineError> {
    let Some(text) = field.and_then(Value::as_str) else {
        return Ok(Vec::new());
    };
    B64.decode(text)
        .map_err(|e| EngineError::Agent(format!("invalid base64 in {what}: {e}")))
}

fn no_reply(timeout: Duration) -> EngineError {
    EngineError::AgentUnavailable(format!(
        "no reply from the guest agent within {}",
        seconds(timeout)
    ))
}

/// `10 s`, or `0.5 s` for a timeout that is not a whole number of seconds.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// A sync id no earlier client of the channel is likely to have used. Kept
/// within i64: the agent parses it as a signed 64-bit integer.
fn random_id() -> u64 {
    let mut h = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    h.finish() & (i64::MAX as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn maps_an_interface() {
        let v = json!({
            "name": "eth0",
            "hardware-address": "52:54:00:AB:CD:EF",
            "ip-addresses": [
                {"ip-address-type": "ipv4", "ip-address": "10.0.2.15", "prefix": 24},
                {"ip-address-type": "ipv6", "ip-address": "fe80::1", "prefix": 64}
            ],
            "statistics": {"rx-bytes": 10, "tx-bytes": 20, "rx-packets": 1}
        });
        assert_eq!(
            interface(&v),
            GuestInterface {
                name: "eth0".into(),
                mac: "52:54:00:ab:cd:ef".into(),
                addresses: vec!["10.0.2.15/24".into(), "fe80::1/64".into()],
                rx_bytes: 10,
                tx_bytes: 20,
            }
        );
        let lo = interface(&json!({"name": "lo", "hardware-address": "00:00:00:00:00:00"}));
        assert_eq!(
            (lo.mac.as_str(), lo.addresses.len(), lo.rx_bytes),
            ("", 0, 0)
        );
    }

    #[test]
    fn maps_exec_status() {
        let s =
            json!({"exited": true, "exitcode": 3, "out-data": "b3V0Cg==", "err-data": "ZXJyCg=="});
        let out = exec_output(&s, false).unwrap();
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(
            (out.stdout.as_slice(), out.stderr.as_slice()),
            (&b"out\n"[..], &b"err\n"[..])
        );
        let killed = exec_output(&json!({"exited": true, "signal": 9}), false).unwrap();
        assert_eq!(killed.exit_code, None);
        let big = B64.encode(vec![b'x'; MAX_CAPTURE + 10]);
        let out = exec_output(
            &json!({"exited": true, "exitcode": 0, "out-data": big}),
            false,
        )
        .unwrap();
        assert_eq!(out.stdout.len(), MAX_CAPTURE);
        assert!(exec_output(&json!({"out-data": "%%%"}), false).is_err());
    }

    #[test]
    fn timeouts_read_well() {
        assert_eq!(seconds(Duration::from_secs(10)), "10 s");
        assert_eq!(seconds(Duration::from_millis(500)), "0.5 s");
    }
}
