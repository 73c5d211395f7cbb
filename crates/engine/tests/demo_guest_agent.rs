//! The demo guest booted through the QEMU engine (TCG), driven through Debian's real
//! qemu-ga over the VM's `qga.sock` with a minimal raw JSON client: passwords, guest-exec,
//! files, interfaces, the read-write boot disk, the CD-ROM, cloud-config `write_files` and
//! `runcmd`, and the guest reporter running as the control plane starts it. A host-side
//! test runs the reporter under busybox against a one-shot HTTP listener.
//!
//! Cache of packages and of the built image (by revision): `$IRONIDC_IMAGE_CACHE`, else
//! `target/ironidc-image-cache`. Without QEMU (or busybox, xorriso) the tests are
//! skipped, unless `$CI` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ironidc_core::engine::{CloudInitSeed, Engine, NoProgress, PowerAction, VmSpec};
use ironidc_engine::image::{
    build_demo_image, DemoImageOptions, DEMO_IMAGE_REVISION, DEMO_READY_MARKER,
};
use serde_json::{json, Value};
use support::cache_dir;
use support::engine::tcg_engine;
use support::guest::make_iso;
use support::host::{nic, TestHost};
use support::tools::{installed, qemu_available, skip_unless_ci};

const REPORTER: &str = include_str!("../../core/src/service/guest/ironidc-report.sh");

const UUID: &str = "agent-vm";
const MAC: &str = "52:54:00:a6:e1:01";
/// The address QEMU's user-mode network hands out first.
const GUEST_ADDRESS: &str = "10.0.2.15";
const SECRET: &str = "0123456789abcdef0123456789abcdef";
/// Where the reporter inside the guest sends its reports: a listener the test starts in
/// the guest itself (the VM's user-mode network is isolated from the host).
const GUEST_REPORT_PORT: u16 = 8080;
const TEST_SCRIPT: &str = "/usr/local/sbin/ironidc-test-marker";
const TEST_MARKER: &str = "IRONIDC-TEST-RUNCMD-RAN";

const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
const AGENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The demo image of this revision, built once and kept in the cache.
fn demo_image() -> PathBuf {
    let cache = cache_dir();
    std::fs::create_dir_all(&cache).unwrap();
    let image = cache.join(format!("demo-rev{DEMO_IMAGE_REVISION}.qcow2"));
    if !image.is_file() {
        let started = Instant::now();
        build_demo_image(&image, &DemoImageOptions::new(&cache), &NoProgress)
            .unwrap_or_else(|err| panic!("build failed: {err:?}"));
        eprintln!("built {} in {:?}", image.display(), started.elapsed());
    }
    image
}

/// A host whose only base image is the demo image, with an ISO directory.
fn test_host(image: &Path) -> TestHost {
    let host = TestHost::new();
    std::fs::create_dir_all(&host.ctx.isos_dir).unwrap();
    std::os::unix::fs::symlink(image, host.image("demo.qcow2")).unwrap();
    host
}

fn spec() -> VmSpec {
    VmSpec {
        mem_mb: 256,
        nics: vec![nic("ethernet0", MAC, None)],
        ..support::host::spec(UUID, "demo.qcow2", 128)
    }
}

/// user-data in exactly the shape the control plane emits: other keys first, then
/// `write_files` (b64) and `runcmd` (flow sequences), with CRLF line ends for good measure.
fn user_data() -> String {
    let marker_script =
        format!("#!/bin/sh\nprintf '\\n{TEST_MARKER} %s\\n' \"$1\" > /dev/console\n");
    let report_conf = format!(
        "REPORT_URL='http://127.0.0.1:{GUEST_REPORT_PORT}/api/client/upload?nic={MAC}'\n\
         REPORT_SECRET='{SECRET}'\nREPORT_INTERVAL=1\n"
    );
    let text = format!(
        "#cloud-config\nhostname: {UUID}\nusers:\n  - name: root\n    lock_passwd: false\n\
         write_files:\n\
         \x20 - path: /usr/local/sbin/ironidc-report\n    permissions: '0755'\n    encoding: b64\n    content: {}\n\
         \x20 - path: /etc/ironidc/report.conf\n    permissions: '0600'\n    encoding: b64\n    content: {}\n\
         \x20 - path: {TEST_SCRIPT}\n    permissions: '0755'\n    encoding: b64\n    content: {}\n\
         runcmd:\n\
         \x20 - [ /usr/local/sbin/ironidc-report, --daemon ]\n\
         \x20 - [ {TEST_SCRIPT}, from-runcmd ]\n",
        B64.encode(REPORTER),
        B64.encode(report_conf),
        B64.encode(marker_script),
    );
    text.replace('\n', "\r\n")
}

/// Wait until the serial log has a line equal to `line`; the time since `since`. (What
/// the guest prints after its console shell started must begin with a line break, or it
/// follows the shell's prompt.)
fn wait_for_line(serial: &Path, line: &str, since: Instant, timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(serial).unwrap_or_default();
        if log.lines().any(|l| l.trim_end() == line) {
            return since.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "no `{line}` on the console within {timeout:?}; serial log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal guest agent client: one JSON command per line, replies read as lines.
struct Qga {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

/// What guest-exec produced.
#[derive(Debug)]
struct Exec {
    code: i64,
    stdout: String,
    stderr: String,
}

impl Qga {
    /// Connect and synchronise: `guest-sync-delimited` until the agent answers, since
    /// bytes sent before it opened the port are lost.
    fn connect(socket: &Path, timeout: Duration) -> Qga {
        let stream = UnixStream::connect(socket).expect("connect to qga.sock");
        let mut qga = Qga {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            next_id: 4000,
        };
        let started = Instant::now();
        while !qga.sync() {
            assert!(
                started.elapsed() < timeout,
                "the guest agent did not answer guest-sync-delimited within {timeout:?}"
            );
        }
        qga
    }

    /// One `guest-sync-delimited` round: 0xFF resets the agent's parser, and its reply is
    /// preceded by 0xFF, so whatever stale bytes came before can be skipped.
    fn sync(&mut self) -> bool {
        self.next_id += 1;
        let id = self.next_id;
        self.set_timeout(Duration::from_secs(2));
        let request = json!({"execute": "guest-sync-delimited", "arguments": {"id": id}});
        self.writer.write_all(b"\xff").unwrap();
        writeln!(self.writer, "{request}").unwrap();
        let mut skipped = Vec::new();
        if self.reader.read_until(0xFF, &mut skipped).is_err() || skipped.last() != Some(&0xFF) {
            return false;
        }
        loop {
            let Some(reply) = self.reply() else {
                return false;
            };
            if reply["return"] == json!(id) {
                return true;
            }
        }
    }

    /// The next reply line as JSON (0xFF delimiters dropped); `None` on timeout or EOF.
    fn reply(&mut self) -> Option<Value> {
        loop {
            let mut raw = Vec::new();
            match self.reader.read_until(b'\n', &mut raw) {
                Ok(n) if n > 0 => {}
                _ => return None,
            }
            raw.retain(|b| *b != 0xFF);
            if let Ok(reply) = serde_json::from_slice(&raw) {
                return Some(reply);
            }
        }
    }

    fn set_timeout(&self, timeout: Duration) {
        self.reader
            .get_ref()
            .set_read_timeout(Some(timeout))
            .unwrap();
    }

    /// Run `command`; its `return` value, or the agent's error as text.
    fn call(&mut self, command: &str, arguments: Value) -> Result<Value, String> {
        self.set_timeout(Duration::from_secs(30));
        let request = if arguments.is_null() {
            json!({ "execute": command })
        } else {
            json!({ "execute": command, "arguments": arguments })
        };
        writeln!(self.writer, "{request}").unwrap();
        let reply = self
            .reply()
            .unwrap_or_else(|| panic!("no reply to {command}"));
        match reply.get("return") {
            Some(value) => Ok(value.clone()),
            None => Err(reply["error"].to_string()),
        }
    }

    fn must(&mut self, command: &str, arguments: Value) -> Value {
        self.call(command, arguments)
            .unwrap_or_else(|e| panic!("{command} failed: {e}"))
    }

    /// guest-exec with captured output, then guest-exec-status until it exited.
    fn exec(&mut self, path: &str, args: &[&str]) -> Exec {
        let started = self.must(
            "guest-exec",
            json!({"path": path, "arg": args, "capture-output": true}),
        );
        let pid = started["pid"].as_i64().expect("guest-exec pid");
        let begun = Instant::now();
        loop {
            let status = self.must("guest-exec-status", json!({ "pid": pid }));
            if status["exited"] == json!(true) {
                let text = |key: &str| {
                    let data = status[key].as_str().unwrap_or("");
                    String::from_utf8(B64.decode(data).unwrap()).unwrap()
                };
                return Exec {
                    code: status["exitcode"].as_i64().unwrap_or(-1),
                    stdout: text("out-data"),
                    stderr: text("err-data"),
                };
            }
            assert!(
                begun.elapsed() < AGENT_TIMEOUT,
                "{path} {args:?} still runs"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `/bin/sh -c script`, which must succeed; its stdout.
    fn sh(&mut self, script: &str) -> String {
        let out = self.exec("/bin/sh", &["-c", script]);
        assert_eq!(
            out.code, 0,
            "`{script}` failed: stdout {:?}, stderr {:?}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    fn write_file(&mut self, path: &str, content: &[u8]) {
        let handle = self.must("guest-file-open", json!({"path": path, "mode": "w"}));
        let written = self.must(
            "guest-file-write",
            json!({"handle": handle, "buf-b64": B64.encode(content)}),
        );
        assert_eq!(written["count"], json!(content.len()));
        self.must("guest-file-close", json!({ "handle": handle }));
    }

    fn read_file(&mut self, path: &str) -> Vec<u8> {
        let handle = self.must("guest-file-open", json!({"path": path, "mode": "r"}));
        let mut content = Vec::new();
        loop {
            let chunk = self.must("guest-file-read", json!({"handle": handle, "count": 65536}));
            content.extend(B64.decode(chunk["buf-b64"].as_str().unwrap()).unwrap());
            if chunk["eof"] == json!(true) || chunk["count"] == json!(0) {
                break;
            }
        }
        self.must("guest-file-close", json!({ "handle": handle }));
        content
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_guest_serves_the_real_agent() {
    if !qemu_available() {
        return;
    }
    let image = demo_image();
    let host = test_host(&image);
    let h = &host.ctx;
    let engine = tcg_engine();
    engine.create_vm(h, &spec(), &NoProgress).await.unwrap();
    let seed = CloudInitSeed {
        meta_data: format!("instance-id: {UUID}\nlocal-hostname: {UUID}\n"),
        user_data: user_data(),
        network_config: String::new(),
    };
    engine.write_seed(h, UUID, &seed).await.unwrap();
    let files = engine.vm_files(h, UUID).unwrap();
    let serial = files.serial_log.clone();

    let started = Instant::now();
    engine
        .power(h, UUID, PowerAction::Start, Duration::from_secs(5))
        .await
        .unwrap();
    let agent_up = wait_for_line(&serial, "IRONIDC-AGENT up", started, BOOT_TIMEOUT);
    let ready = wait_for_line(&serial, DEMO_READY_MARKER, started, BOOT_TIMEOUT);
    eprintln!("IRONIDC-AGENT up after {agent_up:?}, {DEMO_READY_MARKER} after {ready:?}");
    for line in [
        format!("IRONIDC-SEED hostname={UUID}"),
        "IRONIDC-DISK /mnt/disk".to_string(),
        format!("IRONIDC-NET eth0 {GUEST_ADDRESS}"),
        "IRONIDC-RUNCMD /usr/local/sbin/ironidc-report".to_string(),
        format!("IRONIDC-RUNCMD {TEST_SCRIPT}"),
        format!("{TEST_MARKER} from-runcmd"),
    ] {
        wait_for_line(&serial, &line, started, Duration::from_secs(20));
    }

    let mut qga = Qga::connect(&files.qga_socket, AGENT_TIMEOUT);
    assert_eq!(qga.must("guest-ping", Value::Null), json!({}));
    let uptime = qga.sh("cat /proc/uptime");
    eprintln!("agent answering; guest uptime {uptime}");

    // write_files: contents and permissions as the user-data said.
    let conf = String::from_utf8(qga.read_file("/etc/ironidc/report.conf")).unwrap();
    assert!(
        conf.contains(&format!("REPORT_SECRET='{SECRET}'")),
        "{conf}"
    );
    assert_eq!(
        qga.sh("stat -c '%a %s' /etc/ironidc/report.conf /usr/local/sbin/ironidc-report"),
        format!("600 {}\n755 {}\n", conf.len(), REPORTER.len())
    );

    // The reporter the runcmd started: a listener in the guest takes its next report.
    let response = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    qga.write_file("/tmp/http-response", response);
    qga.must(
        "guest-exec",
        json!({"path": "/bin/sh", "arg": ["-c", format!(
            "nc -l -p {GUEST_REPORT_PORT} < /tmp/http-response > /tmp/report-request")]}),
    );
    wait_for_line(
        &serial,
        "IRONIDC-REPORT ok",
        started,
        Duration::from_secs(20),
    );
    let request = wait_for_request(&mut qga);
    let report = check_report_request(&request);
    assert!(report["hdd_total"].as_u64().unwrap() > 0, "{report}");
    assert!(report["net_rx_bytes"].as_u64().unwrap() > 0, "{report}");
    assert!(
        qga.sh("cat /run/ironidc-report.pid")
            .trim()
            .parse::<u32>()
            .is_ok(),
        "no pid file of the reporter daemon"
    );

    // Passwords: chpasswd puts a SHA-512 crypt hash of the password into /etc/shadow.
    let shadow_root = |qga: &mut Qga| qga.sh("grep '^root:' /etc/shadow | cut -d: -f2");
    assert_eq!(shadow_root(&mut qga).trim(), "*");
    let password = "c0rrect horse:battery";
    qga.must(
        "guest-set-user-password",
        json!({"username": "root", "password": B64.encode(password), "crypted": false}),
    );
    let hash = shadow_root(&mut qga).trim().to_string();
    assert!(hash.starts_with("$6$"), "root's shadow field: {hash}");
    let salt = hash.split('$').nth(2).unwrap();
    let recomputed = qga.exec(
        "/bin/sh",
        &[
            "-c",
            r#"mkpasswd -m sha512 -S "$1" "$2""#,
            "sh",
            salt,
            password,
        ],
    );
    assert_eq!(recomputed.stdout.trim(), hash, "{recomputed:?}");
    assert_eq!(qga.sh("stat -c %a /etc/shadow").trim(), "600");

    // Interfaces: eth0 with the VM's MAC and its DHCP address.
    let interfaces = qga.must("guest-network-get-interfaces", Value::Null);
    let eth0 = interfaces
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == json!("eth0"))
        .unwrap_or_else(|| panic!("no eth0 in {interfaces}"));
    assert_eq!(eth0["hardware-address"], json!(MAC), "{eth0}");
    assert!(
        eth0["ip-addresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["ip-address"] == json!(GUEST_ADDRESS)),
        "{eth0}"
    );

    // The CD-ROM: its drivers are loaded, and a disc inserted live can be mounted.
    for module in ["virtio_scsi", "sr_mod", "cdrom", "isofs"] {
        qga.sh(&format!("test -d /sys/module/{module}"));
    }
    if installed("xorriso") {
        make_iso(
            &h.isos_dir.join("test.iso"),
            "IRONIDC_TEST",
            "hello.txt",
            "hello from the CD\n",
        );
        engine.iso_set(h, UUID, Some("test.iso")).await.unwrap();
        let text = qga.sh("for i in 1 2 3 4 5 6 7 8 9 10; do \
               mount -t iso9660 /dev/sr0 /mnt/cdrom 2>/dev/null && break; sleep 1; done; \
             cat /mnt/cdrom/hello.txt && umount /mnt/cdrom");
        assert_eq!(text, "hello from the CD\n");
    } else {
        skip_unless_ci("xorriso");
    }

    // The boot disk: mounted read-write from the vfat disk; what is written there is in
    // the VM's qcow2 once it powered off.
    let mount = qga.sh("grep ' /mnt/disk ' /proc/mounts");
    let fields: Vec<&str> = mount.split_whitespace().collect();
    assert_eq!(fields[2], "vfat", "{mount}");
    assert!(fields[3].split(',').any(|o| o == "rw"), "{mount}");
    qga.write_file("/mnt/disk/agent.txt", b"written through the agent\n");
    assert_eq!(
        qga.sh("cat /mnt/disk/agent.txt"),
        "written through the agent\n"
    );
    drop(qga);
    engine
        .power(h, UUID, PowerAction::Stop, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        read_from_fat_disk(&files.disk, "agent.txt"),
        "written through the agent\n"
    );
    eprintln!("whole guest test took {:?}", started.elapsed());
}

/// The request the in-guest listener wrote, once complete (the listener may still be
/// writing it when the reporter announces success).
fn wait_for_request(qga: &mut Qga) -> String {
    let begun = Instant::now();
    loop {
        let request = String::from_utf8(qga.read_file("/tmp/report-request")).unwrap();
        if request.trim_end().ends_with('}') {
            return request;
        }
        assert!(
            begun.elapsed() < Duration::from_secs(10),
            "incomplete report request: {request:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `file` from the FAT file system of a (stopped) VM's qcow2 disk, through mtools.
fn read_from_fat_disk(disk: &Path, file: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    let status = Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(disk)
        .arg(&raw)
        .status()
        .unwrap();
    assert!(status.success());
    let out = Command::new("mtype")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(&raw)
        .arg(format!("::{file}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "mtype: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Checks a raw HTTP request from the reporter; returns its JSON body.
fn check_report_request(request: &str) -> Value {
    let (head, body) = request
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {request:?}"));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    assert_eq!(
        request_line.split_whitespace().take(2).collect::<Vec<_>>(),
        ["POST", &format!("/api/client/upload?nic={MAC}")],
        "{request_line}"
    );
    assert!(!request_line.contains(SECRET), "secret in the URL");
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    assert_eq!(header("X-Ironidc-Secret").as_deref(), Some(SECRET));
    assert_eq!(header("Content-Type").as_deref(), Some("application/json"));
    let report: Value = serde_json::from_str(body.trim())
        .unwrap_or_else(|e| panic!("body is no JSON ({e}): {body:?}"));
    let fields = report.as_object().unwrap();
    assert_eq!(report["ac_status"], json!("STARTED"));
    for key in [
        "on_update",
        "cpu_total",
        "cpu_usage",
        "mem_total",
        "mem_usage",
        "hdd_total",
        "hdd_usage",
        "network_u",
        "network_d",
        "net_tx_bytes",
        "net_rx_bytes",
    ] {
        assert!(
            fields.get(key).is_some_and(Value::is_u64),
            "{key} missing or not a number: {report}"
        );
    }
    assert_eq!(fields.len(), 12, "unexpected fields: {report}");
    let n = |key: &str| report[key].as_u64().unwrap();
    assert!(n("cpu_total") >= 1 && n("cpu_usage") <= 100, "{report}");
    assert!(
        n("mem_total") > 0 && n("mem_usage") <= n("mem_total"),
        "{report}"
    );
    assert!(n("hdd_usage") <= n("hdd_total"), "{report}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(n("on_update").abs_diff(now) < 120, "{report}");
    report
}

/// A statically linked busybox on this host, with a directory of its applet links.
fn busybox_applets(dir: &Path) -> Option<PathBuf> {
    let busybox = ["/usr/bin/busybox", "/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())?;
    let list = Command::new(&busybox).arg("--list").output().ok()?;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        std::os::unix::fs::symlink(&busybox, bin.join(applet)).unwrap();
    }
    Some(busybox)
}

/// `busybox sh ironidc-report.sh ARGS` with only busybox's applets on PATH.
fn run_reporter(busybox: &Path, dir: &Path, conf: &Path, args: &[&str]) -> std::process::Output {
    let script = dir.join("ironidc-report.sh");
    std::fs::write(&script, REPORTER).unwrap();
    Command::new(busybox)
        .arg("sh")
        .arg(&script)
        .args(args)
        .env_clear()
        .env("PATH", dir.join("bin"))
        .env("IRONIDC_REPORT_CONF", conf)
        .env("IRONIDC_REPORT_CONSOLE", dir.join("console"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Accept one connection, read one HTTP request (headers and Content-Length body) and
/// answer `status`; the raw request.
fn serve_once(listener: TcpListener, status: &'static str) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            head.push_str(&line);
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let length = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().unwrap())
            })
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        )
        .unwrap();
        head + &String::from_utf8(body).unwrap()
    })
}

#[test]
fn reporter_posts_one_report_with_its_secret_in_a_header() {
    let dir = tempfile::tempdir().unwrap();
    let Some(busybox) = busybox_applets(dir.path()) else {
        return skip_unless_ci("busybox (Debian package busybox-static)");
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve_once(listener, "200 OK");
    let conf = dir.path().join("report.conf");
    std::fs::write(
        &conf,
        format!(
            "REPORT_URL='http://127.0.0.1:{port}/api/client/upload?nic={MAC}'\n\
             REPORT_SECRET='{SECRET}'\nREPORT_INTERVAL=60\n"
        ),
    )
    .unwrap();
    let started = Instant::now();
    let out = run_reporter(&busybox, dir.path(), &conf, &["--once"]);
    assert!(out.status.success(), "reporter failed: {out:?}");
    let request = server.join().unwrap();
    let report = check_report_request(&request);
    // One report with no previous one: no rates yet, CPU over a 1 s window.
    assert_eq!(report["network_u"], json!(0));
    assert_eq!(report["network_d"], json!(0));
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("console")).unwrap(),
        "\nIRONIDC-REPORT ok\n"
    );

    // A server that refuses the report: --once fails, and announces nothing.
    std::fs::remove_file(dir.path().join("console")).unwrap();
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let server = serve_once(listener, "500 Internal Server Error");
    let out = run_reporter(&busybox, dir.path(), &conf, &["--once"]);
    server.join().unwrap();
    assert!(!out.status.success(), "a refused report succeeded: {out:?}");
    assert!(!dir.path().join("console").exists());
}

#[test]
fn reporter_refuses_to_run_without_its_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let Some(busybox) = busybox_applets(dir.path()) else {
        return skip_unless_ci("busybox (Debian package busybox-static)");
    };
    let missing = dir.path().join("no-such.conf");
    let out = run_reporter(&busybox, dir.path(), &missing, &["--daemon"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read the configuration") && stderr.contains("no-such.conf"),
        "{stderr}"
    );

    let conf = dir.path().join("report.conf");
    std::fs::write(&conf, "REPORT_URL='http://127.0.0.1:9/x?nic=m'\n").unwrap();
    let out = run_reporter(&busybox, dir.path(), &conf, &["--once"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("REPORT_SECRET missing"), "{stderr}");

    let out = run_reporter(&busybox, dir.path(), &conf, &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
