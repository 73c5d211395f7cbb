//! The WebSocket relay against a real QEMU VNC server on a unix socket and a
//! real WebSocket client speaking RFB through it.
//!
//! Needs `qemu-system-x86_64`; skipped with a message when it is missing,
//! except in CI (env `CI` set), where that is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use ironidc_console::{
    relay, ConsoleError, ConsoleSession, RelayEnd, RelayOptions, RelayStats, REASON_SESSION_ENDED,
};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// QEMU guests of this file run one at a time (the machine has 2 cores and
/// other suites start guests too).
static ONE_VM_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn qemu_available() -> bool {
    let ok = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "qemu-system-x86_64 is required in CI"
        );
        eprintln!("SKIPPED: qemu-system-x86_64 is not installed (install qemu-system-x86)");
    }
    ok
}

/// A diskless VM whose VGA SeaBIOS draws on, with VNC on a unix socket.
/// Dropping it kills QEMU.
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
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let vm = Self {
            child,
            _dir: dir,
            socket,
        };
        let started = Instant::now();
        while !vm.socket.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "QEMU did not create its VNC socket"
            );
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

/// A session that counts the relay's checks, records their `active` flag
/// and can be revoked.
#[derive(Default)]
struct TestSession {
    calls: AtomicUsize,
    revoked: AtomicBool,
    actives: Mutex<Vec<bool>>,
}

#[async_trait]
impl ConsoleSession for TestSession {
    async fn still_valid(&self, active: bool) -> bool {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.actives.lock().unwrap().push(active);
        !self.revoked.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct Relay {
    socket: PathBuf,
    session: Arc<TestSession>,
    options: RelayOptions,
    results: mpsc::UnboundedSender<Result<RelayStats, ConsoleError>>,
}

async fn upgrade(State(r): State<Relay>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| async move {
        let result = relay(socket, &r.socket, &*r.session, r.options).await;
        let _ = r.results.send(result);
    })
}

/// An axum server on 127.0.0.1:0 whose `/ws` relays to `socket`.
struct Server {
    url: String,
    session: Arc<TestSession>,
    results: mpsc::UnboundedReceiver<Result<RelayStats, ConsoleError>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(socket: &Path, check_every: Duration) -> Self {
        let session = Arc::new(TestSession::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Relay {
            socket: socket.to_path_buf(),
            session: session.clone(),
            options: RelayOptions { check_every },
            results: tx,
        };
        let app = Router::new().route("/ws", get(upgrade)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url: format!("ws://{addr}/ws"),
            session,
            results: rx,
            task,
        }
    }

    async fn connect(&self) -> Rfb {
        let (ws, _) = tokio_tungstenite::connect_async(&self.url).await.unwrap();
        Rfb {
            ws,
            buf: VecDeque::new(),
            received: 0,
            sent: 0,
        }
    }

    async fn relay_result(&mut self) -> Result<RelayStats, ConsoleError> {
        tokio::time::timeout(Duration::from_secs(10), self.results.recv())
            .await
            .expect("the relay did not end")
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An RFB client over the WebSocket: binary frames are a byte stream.
struct Rfb {
    ws: Client,
    buf: VecDeque<u8>,
    received: u64,
    sent: u64,
}

const IO_TIMEOUT: Duration = Duration::from_secs(20);

impl Rfb {
    async fn read(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            let msg = tokio::time::timeout(IO_TIMEOUT, self.ws.next())
                .await
                .expect("no RFB data in time")
                .expect("WebSocket ended")
                .unwrap();
            match msg {
                Message::Binary(b) => {
                    self.received += b.len() as u64;
                    self.buf.extend(b.iter());
                }
                other => panic!("unexpected frame while reading RFB: {other:?}"),
            }
        }
        self.buf.drain(..n).collect()
    }
    async fn u8(&mut self) -> u8 {
        self.read(1).await[0]
    }
    async fn u16(&mut self) -> u16 {
        let b = self.read(2).await;
        u16::from_be_bytes([b[0], b[1]])
    }
    async fn u32(&mut self) -> u32 {
        let b = self.read(4).await;
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    async fn send(&mut self, bytes: &[u8]) {
        self.sent += bytes.len() as u64;
        self.ws
            .send(Message::Binary(bytes.to_vec().into()))
            .await
            .unwrap();
    }

    /// Version, security None, ClientInit; returns (width, height, bytes
    /// per pixel) from ServerInit.
    async fn handshake(&mut self) -> (u16, u16, usize) {
        assert_eq!(self.read(12).await, b"RFB 003.008\n");
        self.send(b"RFB 003.008\n").await;
        let count = self.u8().await;
        assert!(count > 0, "the server refused the connection");
        let types = self.read(count as usize).await;
        assert!(types.contains(&1), "security None offered: {types:?}");
        self.send(&[1]).await;
        assert_eq!(self.u32().await, 0, "SecurityResult OK");
        self.send(&[1]).await; // ClientInit, shared
        let width = self.u16().await;
        let height = self.u16().await;
        let pixel_format = self.read(16).await;
        let name_len = self.u32().await;
        let _name = self.read(name_len as usize).await;
        let bits_per_pixel = pixel_format[0];
        assert!(matches!(bits_per_pixel, 8 | 16 | 32), "{pixel_format:?}");
        (width, height, bits_per_pixel as usize / 8)
    }

    async fn request_update(&mut self, incremental: bool, width: u16, height: u16) {
        let mut msg = vec![3, incremental as u8, 0, 0, 0, 0];
        msg.extend_from_slice(&width.to_be_bytes());
        msg.extend_from_slice(&height.to_be_bytes());
        self.send(&msg).await;
    }

    /// Read one FramebufferUpdate (raw encoding, as no SetEncodings was
    /// sent); returns (rectangles, whether any pixel is not black).
    async fn read_update(&mut self, bytes_per_pixel: usize) -> (u16, bool) {
        let kind = self.u8().await;
        assert_eq!(kind, 0, "FramebufferUpdate");
        let _padding = self.u8().await;
        let rects = self.u16().await;
        let mut drawn = false;
        for _ in 0..rects {
            let _x = self.u16().await;
            let _y = self.u16().await;
            let w = self.u16().await as usize;
            let h = self.u16().await as usize;
            let encoding = self.u32().await;
            assert_eq!(encoding, 0, "raw encoding");
            let pixels = self.read(w * h * bytes_per_pixel).await;
            drawn |= pixels.iter().any(|&b| b != 0);
        }
        (rects, drawn)
    }

    /// The next Close frame, skipping data still in flight.
    async fn close_frame(&mut self, within: Duration) -> (CloseCode, String) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = tokio::time::timeout(left, self.ws.next())
                .await
                .expect("no Close frame in time")
                .expect("WebSocket ended without a Close frame")
                .unwrap();
            if let Message::Close(frame) = msg {
                let frame = frame.expect("Close frame without code");
                return (frame.code, frame.reason.to_string());
            }
        }
    }
}

/// The whole RFB path: handshake, full-screen updates drawn by SeaBIOS, the
/// session checks during traffic and idle, and the byte counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_rfb_between_a_websocket_and_qemu() {
    if !qemu_available() {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().await;
    let vm = Vm::start().await;
    let mut server = Server::start(&vm.socket, Duration::from_millis(200)).await;
    let mut rfb = server.connect().await;

    let (width, height, bpp) = rfb.handshake().await;
    assert!(width > 0 && height > 0, "{width}x{height}");
    eprintln!("ServerInit: {width}x{height}, {bpp} bytes per pixel");

    // Full-screen updates until SeaBIOS has drawn something, and at least
    // a few check periods long so checks see traffic.
    let started = Instant::now();
    let mut drawn = false;
    while !drawn || started.elapsed() < Duration::from_millis(700) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "SeaBIOS drew nothing within 30 s"
        );
        rfb.request_update(false, width, height).await;
        let (rects, any) = rfb.read_update(bpp).await;
        assert!(rects >= 1, "a full update has rectangles");
        drawn |= any;
    }

    // Idle (no update requested, so QEMU sends nothing): a check must
    // report inactivity.
    let idle = Instant::now();
    loop {
        if server.session.actives.lock().unwrap().last() == Some(&false) {
            break;
        }
        assert!(idle.elapsed() < Duration::from_secs(5), "no idle check");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let actives = server.session.actives.lock().unwrap().clone();
    assert!(
        actives.contains(&true),
        "a check during traffic: {actives:?}"
    );

    rfb.ws.close(None).await.unwrap();
    let stats = server.relay_result().await.unwrap();
    assert_eq!(stats.end, RelayEnd::ClientClosed);
    assert_eq!(stats.bytes_to_vm, rfb.sent);
    assert!(
        stats.bytes_from_vm >= rfb.received && rfb.received > u64::from(width) * u64::from(height),
        "{stats:?}, client received {}",
        rfb.received
    );
    assert!(stats.duration >= Duration::from_millis(700));
    drop(vm);
}

/// Revoking the session closes an open console with 1008 and our reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_session_closes_the_console_with_1008() {
    if !qemu_available() {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().await;
    let vm = Vm::start().await;
    let mut server = Server::start(&vm.socket, Duration::from_millis(200)).await;
    let mut rfb = server.connect().await;
    assert_eq!(rfb.read(12).await, b"RFB 003.008\n");
    let calls_before = server.session.calls.load(Ordering::SeqCst);

    let revoked_at = Instant::now();
    server.session.revoked.store(true, Ordering::SeqCst);
    let (code, reason) = rfb.close_frame(Duration::from_secs(2)).await;
    assert_eq!(code, CloseCode::Policy);
    assert_eq!(u16::from(code), 1008);
    assert_eq!(reason, REASON_SESSION_ENDED);
    eprintln!("closed {:?} after revocation", revoked_at.elapsed());

    let stats = server.relay_result().await.unwrap();
    assert_eq!(stats.end, RelayEnd::SessionEnded);
    assert!(server.session.calls.load(Ordering::SeqCst) > calls_before);
    drop(vm);
}

/// No socket (VM stopped): the relay says so and the browser gets a Close.
#[tokio::test]
async fn a_missing_socket_is_an_error_and_a_close() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("vnc.sock");
    let mut server = Server::start(&missing, Duration::from_secs(10)).await;
    let mut rfb = server.connect().await;
    let (code, reason) = rfb.close_frame(Duration::from_secs(5)).await;
    assert_eq!(u16::from(code), 1011);
    assert!(reason.contains("not available"), "{reason}");
    match server.relay_result().await {
        Err(ConsoleError::SocketMissing(p)) => assert_eq!(p, missing),
        other => panic!("expected SocketMissing, got {other:?}"),
    }
    assert_eq!(server.session.calls.load(Ordering::SeqCst), 0);
}

/// A socket file nobody listens on (QEMU killed) is a connect error, not
/// "missing", and also a Close.
#[tokio::test]
async fn a_dead_socket_is_a_connect_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vnc.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let mut server = Server::start(&path, Duration::from_secs(10)).await;
    let mut rfb = server.connect().await;
    let (code, _) = rfb.close_frame(Duration::from_secs(5)).await;
    assert_eq!(u16::from(code), 1011);
    assert!(matches!(
        server.relay_result().await,
        Err(ConsoleError::Connect { .. })
    ));
}
