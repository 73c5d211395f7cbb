//! The guest agent client (`qemu::qga`) against the real `qemu-ga` run on
//! the host (`-m unix-listen`): the same program and protocol a guest runs,
//! minus the virtio-serial hop. Also: a socket where nothing answers, and a
//! fake agent that leaves stale replies in the channel.
//!
//! Needs `qemu-ga` (Debian: qemu-guest-agent); skipped with a message when it
//! is missing, except in CI (env `CI` set), where that is a failure.
//! `guest-set-user-password` is never called: it would change a password of
//! this machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironidc_core::engine::EngineError;
use ironidc_engine::qemu::qga::{QgaClient, MAX_CAPTURE};
use support::tools::tools_available;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

const QEMU_GA: &str = "/usr/sbin/qemu-ga";
const T: Duration = Duration::from_secs(10);

fn agent_available() -> bool {
    tools_available(&[QEMU_GA], "qemu-guest-agent")
}

/// A `qemu-ga` listening on a socket in its own temporary directory, killed
/// when dropped.
struct HostAgent {
    child: Child,
    tmp: tempfile::TempDir,
    socket: PathBuf,
}

impl HostAgent {
    async fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let socket = tmp.path().join("qga.sock");
        let child = Command::new(QEMU_GA)
            .args(["-m", "unix-listen", "-p"])
            .arg(&socket)
            // Its own pidfile and state directory: never the system's.
            .arg("-f")
            .arg(tmp.path().join("qga.pid"))
            .arg("-t")
            .arg(tmp.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while !socket.exists() {
            assert!(started.elapsed() < T, "qemu-ga did not create its socket");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, tmp, socket }
    }

    async fn client(&self) -> QgaClient {
        QgaClient::connect(&self.socket, T).await.unwrap()
    }

    /// Pids of the agent's child processes (what `guest-exec` started).
    fn children(&self) -> Vec<i32> {
        let pid = self.child.id();
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect()
    }
}

impl Drop for HostAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn ping_and_exec() {
    if !agent_available() {
        return;
    }
    let agent = HostAgent::start().await;
    let mut qga = agent.client().await;
    qga.ping().await.unwrap();

    let out = qga
        .exec(
            "/bin/sh",
            &["-c".into(), "echo out; echo err >&2; exit 3".into()],
            None,
            T,
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert!(!out.timed_out);

    // stdin reaches the program; a program found through PATH.
    let input = b"line one\nline two\n";
    let out = qga
        .exec("cat", &[], Some(input.as_slice()), T)
        .await
        .unwrap();
    assert_eq!(
        (out.exit_code, out.stdout.as_slice()),
        (Some(0), &input[..])
    );

    // Killed by a signal: no exit code.
    let out = qga
        .exec("/bin/sh", &["-c".into(), "kill -9 $$".into()], None, T)
        .await
        .unwrap();
    assert_eq!((out.exit_code, out.timed_out), (None, false));

    // Output beyond the cap is cut at the cap.
    let out = qga
        .exec(
            "head",
            &["-c".into(), "1100000".into(), "/dev/zero".into()],
            None,
            T,
        )
        .await
        .unwrap();
    assert_eq!((out.exit_code, out.stdout.len()), (Some(0), MAX_CAPTURE));

    // A program that does not exist: the agent's error, typed.
    let err = qga
        .exec("/nonexistent/program", &[], None, T)
        .await
        .unwrap_err();
    assert!(matches!(&err, EngineError::Agent(_)), "{err}");
}

#[tokio::test]
async fn exec_timeout_kills_the_command() {
    if !agent_available() {
        return;
    }
    let agent = HostAgent::start().await;
    let mut qga = agent.client().await;
    let started = Instant::now();
    let out = qga
        .exec("sleep", &["30".into()], None, Duration::from_secs(1))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(out.timed_out, "{out:?}");
    assert_eq!(out.exit_code, None);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    // The sleep was killed (and reaped): the agent has no child left.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !agent.children().is_empty() {
        assert!(
            Instant::now() < deadline,
            "agent children left: {:?}",
            agent.children()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The channel is still in order afterwards.
    qga.ping().await.unwrap();
}

#[tokio::test]
async fn files_round_trip() {
    if !agent_available() {
        return;
    }
    let agent = HostAgent::start().await;
    let mut qga = agent.client().await;
    let dir = agent.tmp.path();

    // 200 KiB of varied bytes: several write and read chunks, every byte value.
    let content: Vec<u8> = (0..200 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let big = dir.join("big.bin");
    qga.write_file(big.to_str().unwrap(), &content)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&big).unwrap(), content, "file on disk");
    let back = qga.read_file(big.to_str().unwrap(), 1 << 20).await.unwrap();
    assert_eq!(back, content, "file read back");
    // max_bytes cuts the read exactly.
    let head = qga.read_file(big.to_str().unwrap(), 50_000).await.unwrap();
    assert_eq!(head, &content[..50_000]);

    // Writing truncates; an empty file works.
    let small = dir.join("small.txt");
    std::fs::write(&small, b"previous, longer content").unwrap();
    qga.write_file(small.to_str().unwrap(), b"new")
        .await
        .unwrap();
    assert_eq!(std::fs::read(&small).unwrap(), b"new");
    qga.write_file(small.to_str().unwrap(), b"").await.unwrap();
    assert_eq!(std::fs::read(&small).unwrap(), b"");
    assert_eq!(
        qga.read_file(small.to_str().unwrap(), 100).await.unwrap(),
        b""
    );

    // Errors of the agent are typed, and the handle is closed all the same
    // (the agent still answers, so the session survived the error).
    let err = qga
        .read_file(dir.join("missing").to_str().unwrap(), 10)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::Agent(m) if m.contains("No such file")),
        "{err}"
    );
    let err = qga
        .write_file(dir.join("no/such/dir/f").to_str().unwrap(), b"x")
        .await
        .unwrap_err();
    assert!(matches!(&err, EngineError::Agent(_)), "{err}");
    qga.ping().await.unwrap();
}

#[tokio::test]
async fn interfaces_include_loopback() {
    if !agent_available() {
        return;
    }
    let agent = HostAgent::start().await;
    let mut qga = agent.client().await;
    let ifaces = qga.interfaces().await.unwrap();
    let lo = ifaces
        .iter()
        .find(|i| i.name == "lo")
        .unwrap_or_else(|| panic!("no lo in {ifaces:?}"));
    assert!(lo.addresses.iter().any(|a| a == "127.0.0.1/8"), "{lo:?}");
    assert_eq!(lo.mac, "", "loopback has no MAC");
    // Another interface with a MAC is lower-case.
    for i in ifaces.iter().filter(|i| !i.mac.is_empty()) {
        assert_eq!(i.mac, i.mac.to_ascii_lowercase());
        assert_eq!(i.mac.len(), 17, "{i:?}");
    }
}

#[tokio::test]
async fn a_half_written_request_does_not_poison_the_next_client() {
    if !agent_available() {
        return;
    }
    let agent = HostAgent::start().await;
    {
        let mut raw = tokio::net::UnixStream::connect(&agent.socket)
            .await
            .unwrap();
        raw.write_all(br#"{"execute": "guest-pi"#).await.unwrap();
    }
    let mut qga = agent.client().await;
    qga.ping().await.unwrap();
}

#[tokio::test]
async fn silence_is_agent_unavailable() {
    // Like a VM whose guest runs no agent: QEMU accepts the connection and
    // nothing ever answers.
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("silent.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let _server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(stream);
    });
    let started = Instant::now();
    let err = QgaClient::connect(&socket, Duration::from_millis(500))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, EngineError::AgentUnavailable(m) if m.contains("no reply from the guest agent within 0.5 s")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // No socket at all.
    let err = QgaClient::connect(&tmp.path().join("none.sock"), T)
        .await
        .err()
        .unwrap();
    assert!(matches!(&err, EngineError::AgentUnavailable(_)), "{err}");
}

#[tokio::test]
async fn stale_replies_are_skipped() {
    // A fake agent whose channel still holds what an earlier, abandoned
    // client was sent: a reply, a stale sync reply with its delimiter, and
    // for the first command a reply carrying another id.
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("stale.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).split(b'\n');
        let sync = lines.next_segment().await.unwrap().unwrap();
        assert_eq!(sync[0], 0xFF, "the resync byte comes first");
        let request: serde_json::Value = serde_json::from_slice(&sync[1..]).unwrap();
        assert_eq!(request["execute"], "guest-sync-delimited");
        let id = request["arguments"]["id"].as_u64().unwrap();
        write
            .write_all(b"{\"return\": {\"pid\": 77}}\n\xff{\"return\": 12345}\n")
            .await
            .unwrap();
        let mut reply = b"garbage\n\xff".to_vec();
        reply.extend_from_slice(format!("{{\"return\": {id}}}\n").as_bytes());
        write.write_all(&reply).await.unwrap();
        let ping: serde_json::Value =
            serde_json::from_slice(&lines.next_segment().await.unwrap().unwrap()).unwrap();
        assert_eq!(ping["execute"], "guest-ping");
        write
            .write_all(b"{\"error\": {\"class\": \"X\", \"desc\": \"stale\"}, \"id\": 999}\n")
            .await
            .unwrap();
        write
            .write_all(format!("{{\"return\": {{}}, \"id\": {}}}\n", ping["id"]).as_bytes())
            .await
            .unwrap();
    });
    let mut qga = QgaClient::connect(&socket, T).await.unwrap();
    qga.ping().await.unwrap();
    server.await.unwrap();
}
