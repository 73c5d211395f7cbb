//! A small typed QMP client over a unix socket.
//!
//! QMP is line-delimited JSON: a greeting, then `qmp_capabilities`, then
//! commands answered by `{"return":…}` or `{"error":…}`, interleaved with
//! asynchronous `{"event":…}` messages, which we skip. QEMU serves one client
//! at a time per monitor, so callers connect, do their work and drop the
//! client; every read has a timeout so a busy or wedged monitor never blocks
//! the caller for long.

use std::path::Path;
use std::time::Duration;

use ironidc_core::engine::EngineError;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// One command on a fresh connection. QEMU serves one monitor client at a
/// time, so long operations (jobs) poll with short connections like this one
/// rather than holding the monitor: `state()` and metrics keep working.
pub async fn command(
    socket: &Path,
    command: &str,
    arguments: Option<Value>,
    timeout: Duration,
) -> Result<Value, EngineError> {
    QmpClient::connect(socket, timeout)
        .await?
        .execute(command, arguments)
        .await
}

/// A QEMU job (block job, snapshot job) as `query-jobs` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JobInfo {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `created`, `running`, `paused`, …, `concluded` (done, with or without
    /// an error), `null`.
    pub status: String,
    /// Progress in job-specific units (bytes for a backup); only the ratio
    /// means something, and `total` may still change while the job runs.
    #[serde(rename = "current-progress")]
    pub current: u64,
    #[serde(rename = "total-progress")]
    pub total: u64,
    /// Why a concluded job failed (also set for a cancelled one).
    #[serde(default)]
    pub error: Option<String>,
}

impl JobInfo {
    pub fn is_concluded(&self) -> bool {
        self.status == "concluded"
    }
}

pub struct QmpClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    timeout: Duration,
    next_id: u64,
    greeting: Value,
}

impl QmpClient {
    /// Connect, read the greeting and leave capabilities negotiation mode.
    pub async fn connect(socket: &Path, timeout: Duration) -> Result<Self, EngineError> {
        let stream = tokio::time::timeout(timeout, UnixStream::connect(socket))
            .await
            .map_err(|_| EngineError::Qmp(format!("connecting to {} timed out", socket.display())))?
            .map_err(|e| EngineError::Qmp(format!("connecting to {}: {e}", socket.display())))?;
        let (read, writer) = stream.into_split();
        let mut client = Self {
            reader: BufReader::new(read),
            writer,
            timeout,
            next_id: 1,
            greeting: Value::Null,
        };
        let greeting = client.read_message().await?;
        if greeting.get("QMP").is_none() {
            return Err(EngineError::Qmp(format!("unexpected greeting: {greeting}")));
        }
        client.greeting = greeting;
        client.execute("qmp_capabilities", None).await?;
        Ok(client)
    }

    /// The greeting (`{"QMP":{"version":…,"capabilities":…}}`).
    pub fn greeting(&self) -> &Value {
        &self.greeting
    }

    /// Run `command` with optional `arguments` and return its `return` value.
    /// A QMP error becomes `EngineError::Qmp("<class>: <desc>")`.
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
        let mut line = request.to_string();
        line.push('\n');
        tokio::time::timeout(self.timeout, self.writer.write_all(line.as_bytes()))
            .await
            .map_err(|_| EngineError::Qmp(format!("sending {command} timed out")))?
            .map_err(|e| EngineError::Qmp(format!("sending {command}: {e}")))?;
        loop {
            let message = self.read_message().await?;
            if message.get("event").is_some() {
                tracing::debug!(%message, "qmp event");
                continue;
            }
            // A reply to some earlier, abandoned request: not ours.
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
                return Err(EngineError::Qmp(format!("{command}: {class}: {desc}")));
            }
            return Err(EngineError::Qmp(format!(
                "unexpected reply to {command}: {message}"
            )));
        }
    }

    /// Every job QEMU knows (`query-jobs`): running ones and concluded ones
    /// not dismissed yet.
    pub async fn query_jobs(&mut self) -> Result<Vec<JobInfo>, EngineError> {
        let jobs = self.execute("query-jobs", None).await?;
        serde_json::from_value(jobs.clone())
            .map_err(|e| EngineError::Qmp(format!("unexpected query-jobs reply {jobs}: {e}")))
    }

    /// The job `id`, or `None` when QEMU has no such job (never started, or
    /// already dismissed).
    pub async fn query_job(&mut self, id: &str) -> Result<Option<JobInfo>, EngineError> {
        Ok(self.query_jobs().await?.into_iter().find(|j| j.id == id))
    }

    /// Ask a running job to stop. A job that has concluded refuses the verb;
    /// callers that only want it gone treat that as done.
    pub async fn job_cancel(&mut self, id: &str) -> Result<(), EngineError> {
        self.execute("job-cancel", Some(json!({ "id": id })))
            .await
            .map(drop)
    }

    /// Remove a concluded job from QEMU's job list.
    pub async fn job_dismiss(&mut self, id: &str) -> Result<(), EngineError> {
        self.execute("job-dismiss", Some(json!({ "id": id })))
            .await
            .map(drop)
    }

    async fn read_message(&mut self) -> Result<Value, EngineError> {
        let mut line = String::new();
        let n = tokio::time::timeout(self.timeout, self.reader.read_line(&mut line))
            .await
            .map_err(|_| {
                EngineError::Qmp(format!("no answer within {} ms", self.timeout.as_millis()))
            })?
            .map_err(|e| EngineError::Qmp(format!("reading: {e}")))?;
        if n == 0 {
            return Err(EngineError::Qmp("monitor closed the connection".into()));
        }
        serde_json::from_str(line.trim())
            .map_err(|e| EngineError::Qmp(format!("invalid JSON {line:?}: {e}")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    /// A fake monitor that speaks enough QMP for the tests: it checks that
    /// capabilities come first, sends an event before some answers, and
    /// answers unknown commands with an error.
    async fn fake_monitor(listener: UnixListener) {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let greeting = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}"#;
        write
            .write_all(format!("{greeting}\n").as_bytes())
            .await
            .unwrap();
        let mut negotiated = false;
        while let Some(line) = lines.next_line().await.unwrap() {
            let req: Value = serde_json::from_str(&line).unwrap();
            let id = req["id"].clone();
            let cmd = req["execute"].as_str().unwrap().to_string();
            let reply = match (negotiated, cmd.as_str()) {
                (false, "qmp_capabilities") => {
                    negotiated = true;
                    json!({"return": {}, "id": id})
                }
                (false, _) => {
                    json!({"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}, "id": id})
                }
                (true, "query-status") => {
                    let event =
                        json!({"timestamp": {"seconds": 1, "microseconds": 0}, "event": "STOP"});
                    write
                        .write_all(format!("{event}\n").as_bytes())
                        .await
                        .unwrap();
                    // A stale reply to another request must be skipped too.
                    write
                        .write_all(b"{\"return\": {}, \"id\": 999}\n")
                        .await
                        .unwrap();
                    json!({"return": {"status": "paused", "running": false, "singlestep": false}, "id": id})
                }
                (true, "echo") => json!({"return": req["arguments"].clone(), "id": id}),
                (true, "query-jobs") => json!({"return": [
                    {"current-progress": 1, "status": "concluded", "total-progress": 1,
                     "type": "snapshot-load", "id": "s1", "error": "Snapshot 'x' does not exist in one or more devices"},
                    {"current-progress": 3145728, "status": "running", "total-progress": 67108864,
                     "type": "backup", "id": "b1"}
                ], "id": id}),
                (true, "hang") => continue,
                (true, other) => {
                    json!({"error": {"class": "CommandNotFound", "desc": format!("The command {other} has not been found")}, "id": id})
                }
            };
            write
                .write_all(format!("{reply}\n").as_bytes())
                .await
                .unwrap();
        }
    }

    fn listener() -> (tempfile::TempDir, std::path::PathBuf, UnixListener) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        (dir, path, listener)
    }

    #[tokio::test]
    async fn talks_to_a_fake_monitor() {
        let (_dir, path, listener) = listener();
        let server = tokio::spawn(fake_monitor(listener));
        let mut qmp = QmpClient::connect(&path, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(qmp.greeting()["QMP"]["version"]["qemu"]["major"], 7);

        let status = qmp.execute("query-status", None).await.unwrap();
        assert_eq!(status["status"], "paused");

        let echoed = qmp
            .execute("echo", Some(json!({"a": [1, 2]})))
            .await
            .unwrap();
        assert_eq!(echoed, json!({"a": [1, 2]}));

        let err = qmp.execute("nope", None).await.unwrap_err();
        assert!(
            matches!(&err, EngineError::Qmp(m) if m.contains("CommandNotFound")),
            "{err}"
        );

        drop(qmp);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn reads_the_job_list() {
        let (_dir, path, listener) = listener();
        let _server = tokio::spawn(fake_monitor(listener));
        let mut qmp = QmpClient::connect(&path, Duration::from_secs(2))
            .await
            .unwrap();
        let backup = qmp.query_job("b1").await.unwrap().unwrap();
        assert_eq!(
            (backup.kind.as_str(), backup.current, backup.total),
            ("backup", 3 * 1024 * 1024, 64 * 1024 * 1024)
        );
        assert!(!backup.is_concluded() && backup.error.is_none());
        let load = qmp.query_job("s1").await.unwrap().unwrap();
        assert!(load.is_concluded());
        assert!(load.error.unwrap().contains("does not exist"));
        assert_eq!(qmp.query_job("gone").await.unwrap(), None);
    }

    #[tokio::test]
    async fn times_out_on_a_silent_command() {
        let (_dir, path, listener) = listener();
        let _server = tokio::spawn(fake_monitor(listener));
        let mut qmp = QmpClient::connect(&path, Duration::from_millis(300))
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let err = qmp.execute("hang", None).await.unwrap_err();
        assert!(
            matches!(&err, EngineError::Qmp(m) if m.contains("no answer")),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn times_out_without_a_greeting() {
        let (_dir, path, listener) = listener();
        // Accept, then say nothing: like a monitor busy with another client.
        let _server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(stream);
        });
        let started = std::time::Instant::now();
        let err = QmpClient::connect(&path, Duration::from_millis(300))
            .await
            .err()
            .unwrap();
        assert!(matches!(&err, EngineError::Qmp(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn missing_socket_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = QmpClient::connect(&dir.path().join("none.sock"), Duration::from_secs(1))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&err, EngineError::Qmp(m) if m.contains("connecting")),
            "{err}"
        );
    }
}
