//! The whole console path in a real browser: headless Chromium loads our
//! page, which loads the embedded noVNC, which connects through the relay to
//! a real QEMU's VNC socket.
//!
//! Needs `chromium` (Debian package `chromium`), `qemu-system-x86_64` and
//! noVNC installed in web/console/node_modules; skipped with a message when
//! one is missing, except in CI (env `CI` set), where that is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use ironidc_console::{relay, ConsoleError, ConsoleSession, RelayOptions, RelayStats};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

static ONE_VM_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn available() -> bool {
    let runs = |p: &str| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let missing: Vec<&str> = [
        ("chromium", runs("chromium")),
        ("qemu-system-x86_64", runs("qemu-system-x86_64")),
        (
            "noVNC (cd web/console && npm ci)",
            ironidc_console::novnc_installed(),
        ),
    ]
    .into_iter()
    .filter(|(_, ok)| !ok)
    .map(|(name, _)| name)
    .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "required in CI: {missing:?}"
    );
    eprintln!("SKIPPED: not installed: {missing:?}");
    false
}

struct Vm {
    child: Child,
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Vm {
    async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ironidc-con")
            .tempdir()
            .unwrap();
        let socket = dir.path().join("vnc.sock");
        let child = Command::new("qemu-system-x86_64")
            .args(["-accel", "tcg", "-machine", "pc", "-nodefaults"])
            .args(["-device", "VGA", "-display", "none", "-m", "64"])
            .arg("-vnc")
            .arg(format!("unix:{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let vm = Self {
            child,
            _dir: dir,
            socket,
        };
        let started = Instant::now();
        while !vm.socket.exists() {
            assert!(started.elapsed() < Duration::from_secs(20), "no VNC socket");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        vm
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Session {
    valid: AtomicBool,
}

#[async_trait]
impl ConsoleSession for Session {
    async fn still_valid(&self, _active: bool) -> bool {
        self.valid.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct Relay {
    socket: PathBuf,
    session: Arc<Session>,
    results: mpsc::UnboundedSender<Result<RelayStats, ConsoleError>>,
}

async fn upgrade(State(r): State<Relay>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| async move {
        let options = RelayOptions {
            check_every: Duration::from_millis(500),
        };
        let _ = r
            .results
            .send(relay(socket, &r.socket, &*r.session, options).await);
    })
}

/// Our page and noVNC plus the WebSocket route the page connects to, as the
/// API will mount them.
async fn serve(relay: Relay) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let app = ironidc_console::router().merge(
        Router::new()
            .route("/api/client/console/ws", get(upgrade))
            .with_state(relay),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, task)
}

/// Headless Chromium driven over the DevTools protocol (one page).
struct Browser {
    child: tokio::process::Child,
    _profile: tempfile::TempDir,
    cdp: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    session: String,
    next_id: u64,
}

impl Browser {
    async fn open(url: &str) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Chromium prints its DevTools endpoint on stderr.
        let stderr = child.stderr.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let endpoint = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(ws) = line.strip_prefix("DevTools listening on ") {
                    return ws.trim().to_string();
                }
            }
            panic!("chromium exited without a DevTools endpoint");
        })
        .await
        .expect("chromium did not start");
        // Keep draining stderr so chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (cdp, _) = tokio_tungstenite::connect_async(&endpoint).await.unwrap();
        let mut browser = Self {
            child,
            _profile: profile,
            cdp,
            session: String::new(),
            next_id: 1,
        };
        let target = browser
            .call("Target.createTarget", json!({ "url": url }))
            .await;
        let attached = browser
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser
    }

    /// One DevTools command (on the page once attached); its `result`.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.cdp
            .send(Message::Text(msg.to_string().into()))
            .await
            .unwrap();
        loop {
            let reply = tokio::time::timeout(Duration::from_secs(30), self.cdp.next())
                .await
                .expect("no DevTools reply")
                .unwrap()
                .unwrap();
            let Message::Text(text) = reply else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// Wait until `expression` is true in the page.
    async fn wait_for(&mut self, expression: &str, within: Duration) {
        let started = Instant::now();
        while self.eval(expression).await != json!(true) {
            let status = self.eval(STATUS).await;
            assert!(
                started.elapsed() < within,
                "{expression} not true within {within:?}; status {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

const STATUS: &str = "document.getElementById('status').textContent";

/// Whether noVNC's canvas has a picture with some non-black pixel.
const CANVAS_DRAWN: &str = "(() => { const c = document.querySelector('#screen canvas'); \
     if (!c || c.width === 0) return false; \
     const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
     for (let i = 0; i < d.length; i += 4) { if (d[i] || d[i + 1] || d[i + 2]) return true; } \
     return false; })()";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_connects_through_novnc() {
    if !available() {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().await;
    let vm = Vm::start().await;
    let session = Arc::new(Session {
        valid: AtomicBool::new(true),
    });
    let (tx, mut results) = mpsc::unbounded_channel();
    let (addr, server) = serve(Relay {
        socket: vm.socket.clone(),
        session: session.clone(),
        results: tx,
    })
    .await;

    let mut browser = Browser::open(&format!("http://{addr}/console/vnc.html?token=t0k3n")).await;
    browser
        .wait_for(
            &format!("{STATUS} === 'Connected'"),
            Duration::from_secs(20),
        )
        .await;
    // SeaBIOS's screen arrives in noVNC's canvas.
    browser
        .wait_for(CANVAS_DRAWN, Duration::from_secs(30))
        .await;
    // The single-use token left the address bar.
    assert_eq!(browser.eval("location.search").await, json!(""));
    assert_eq!(
        browser
            .eval("document.getElementById('ctrl-alt-del').disabled")
            .await,
        json!(false)
    );
    let size = browser
        .eval("(() => { const c = document.querySelector('#screen canvas'); return [c.width, c.height]; })()")
        .await;
    eprintln!("canvas {size}");

    // Revoking the session ends the open console, and the page says why.
    session.valid.store(false, Ordering::SeqCst);
    browser
        .wait_for(
            &format!("{STATUS} === 'Disconnected: console session expired or revoked'"),
            Duration::from_secs(5),
        )
        .await;
    let stats = tokio::time::timeout(Duration::from_secs(10), results.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    eprintln!("{stats:?}");
    assert_eq!(stats.end, ironidc_console::RelayEnd::SessionEnded);
    // noVNC negotiates compressed encodings: a mostly black text screen is
    // a few KiB at most, but more than the RFB handshake alone.
    assert!(
        stats.bytes_from_vm > 1024 && stats.bytes_to_vm > 12,
        "{stats:?}"
    );
    drop(browser);
    server.abort();
    drop(vm);
}
