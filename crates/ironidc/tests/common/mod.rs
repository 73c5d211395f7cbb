//! Shared harness of the end-to-end tests: the real `ironidc` binary on a
//! free port with its own data directory, a blocking JSON client, and the
//! demo image built once per machine (cached under `target/`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod netns;

/// The service layer in this process, over a fresh SQLite store in `dir`
/// (for tests of the core through its public API); also the store, to
/// change it behind the service layer's back.
pub async fn in_process(
    dir: &Path,
    engines: ironidc_core::EngineRegistry,
    opts: ironidc_core::ServiceOptions,
) -> (ironidc_core::Services, ironidc_store::SqlStore) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let store =
        ironidc_store::SqlStore::connect(&format!("sqlite://{}/t.db?mode=rwc", dir.display()))
            .await
            .unwrap();
    let secrets = ironidc_core::secrets::SecretBox::load_or_create(&dir.join("k")).unwrap();
    let network = ironidc_net::HostNetwork::new(
        ironidc_net::HostNetworkOptions {
            run_dir: dir.join("run"),
            acme: None,
        },
        ironidc_net::proxy::ReverseProxy::new(),
    );
    let services = ironidc_core::Services::new(
        std::sync::Arc::new(store.clone()),
        engines,
        secrets,
        std::sync::Arc::new(network),
        opts,
    );
    (services, store)
}

pub const TOKEN: &str = "test-admin-token-0123456789";
/// The built-in `administrator`'s password in tests.
pub const ADMIN_PASSWORD: &str = "Test-Admin-Passw0rd";

pub fn workspace_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

/// True when QEMU tests can run here. Off CI a missing QEMU skips the test
/// with a message; in CI (`CI` set) it fails it, so CI never skips.
pub fn qemu_available(test: &str) -> bool {
    let ok = Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: qemu-system-x86_64 is required in CI"
        );
        eprintln!("SKIPPED {test}: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86 qemu-utils)");
    }
    ok
}

/// The demo image, built once per image revision (the builder writes to a
/// temp file and renames, so concurrent test binaries never see a half-built
/// image): `target/ironidc-test-images/rev<N>/demo.qcow2`, where N is
/// `DEMO_IMAGE_REVISION`, so changed guest files always get a fresh image.
pub fn demo_image_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = workspace_target()
            .join("ironidc-test-images")
            .join(format!("rev{}", ironidc_engine::image::DEMO_IMAGE_REVISION));
        let image = dir.join("demo.qcow2");
        if !image.exists() {
            std::fs::create_dir_all(&dir).unwrap();
            let cache = std::env::var_os("IRONIDC_IMAGE_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_target().join("ironidc-image-cache"));
            let opts = ironidc_engine::image::DemoImageOptions::new(cache);
            ironidc_engine::image::build_demo_image(
                &image,
                &opts,
                &ironidc_core::engine::NoProgress,
            )
            .expect("build demo image");
        }
        std::fs::canonicalize(&dir).unwrap()
    })
    .clone()
}

/// A small qcow2 that is not bootable: enough for tests that create VMs but
/// never start them.
pub fn blank_image_dir(root: &Path) -> PathBuf {
    let dir = root.join("blank-images");
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(dir.join("blank.qcow2"))
        .arg("16M")
        .status()
        .expect("qemu-img");
    assert!(out.success());
    dir
}

/// A reqwest builder with the aws-lc-rs TLS provider installed first: in a
/// workspace build, reqwest's features are unified with crates that choose
/// no provider, and reqwest then panics without one.
pub fn http_client_builder() -> reqwest::blocking::ClientBuilder {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::blocking::Client::builder()
}

pub struct Server {
    pub child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    pub port: u16,
    pub client: reqwest::blocking::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[("IRONIDC_TOKEN", TOKEN)], None)
    }

    /// A controller with host `h1` whose one OS image (`demo`) is a blank,
    /// unbootable qcow2: for tests that create VMs but never start them.
    pub fn start_with_blank_host(data_dir: &Path) -> Self {
        let images = blank_image_dir(data_dir);
        let s = Self::start(data_dir);
        s.ok(
            "POST",
            "/api/server/create",
            Some(host_body("h1", &images, "blank.qcow2")),
        );
        s
    }

    pub fn start_with(data_dir: &Path, env: &[(&str, &str)], port: Option<u16>) -> Self {
        let port = port.unwrap_or_else(free_port);
        Self::spawn(
            Command::new(env!("CARGO_BIN_EXE_ironidc")),
            "127.0.0.1",
            port,
            data_dir,
            env,
        )
    }

    /// Run the controller inside network namespace `netns`, listening on
    /// `ip:port` (an address of that namespace the test can reach).
    pub fn start_in_netns(
        netns: &str,
        ip: &str,
        port: u16,
        data_dir: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns, env!("CARGO_BIN_EXE_ironidc")]);
        Self::spawn(cmd, ip, port, data_dir, env)
    }

    fn spawn(mut cmd: Command, ip: &str, port: u16, data_dir: &Path, env: &[(&str, &str)]) -> Self {
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("{ip}:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .env("IRONIDC_ACCEL", "tcg")
            .env("IRONIDC_STOP_TIMEOUT", "45")
            .env("IRONIDC_RECONCILE_INTERVAL", "2")
            .env_remove("IRONIDC_TOKEN")
            .env_remove("IRONIDC_DATABASE_URL")
            // Tests run many controllers at once: no proxy unless asked for.
            .env("IRONIDC_PROXY_HTTP", "off")
            .env("IRONIDC_PROXY_HTTPS", "off")
            // Tests fire requests faster than any client: limits only
            // where a test asks for them.
            .env("IRONIDC_RATE_LIMIT_IP", "0")
            .env("IRONIDC_RATE_LIMIT_USER", "0")
            .env("IRONIDC_RATE_LIMIT_LOGIN", "0")
            .env("IRONIDC_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env_remove("IRONIDC_TRUSTED_PROXIES")
            .env_remove("IRONIDC_ACCESS_TOKEN_SECS")
            .env_remove("IRONIDC_REFRESH_TOKEN_SECS")
            .env_remove("IRONIDC_LOCKOUT_AFTER")
            .env_remove("IRONIDC_LOCKOUT_MINUTES")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn ironidc");
        let server = Self {
            child,
            base: format!("http://{ip}:{port}"),
            data_dir: data_dir.to_path_buf(),
            port,
            client: http_client_builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self
                .client
                .get(format!("{}/api/system/statis", self.base))
                .send()
                .is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("ironidc did not start listening on {}", self.base);
    }

    /// A request with the admin token; returns (HTTP status, envelope).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(Some(TOKEN), method, path, body)
    }

    pub fn call_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub fn raw(&self, method: &str, path: &str, body: &'static str) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    /// Assert a 200 envelope and return its `data`.
    pub fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body);
        assert_eq!(status, 200, "{method} {path}: {v}");
        assert_eq!(v["code"], 200, "{v}");
        assert!(v["timestamp"].as_i64().unwrap_or(0) > 1_600_000_000, "{v}");
        v["data"].clone()
    }

    /// A PTPB request: `Authorization: <token>` as PTPB clients send it.
    pub fn ptpb(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.header("authorization", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// Log in through PTPB; returns (access, refresh).
    pub fn login(&self, account: &str, password: &str) -> (String, String) {
        let (status, v) = self.ptpb(
            None,
            "POST",
            "/api/rbac/login/",
            Some(serde_json::json!({"account": account, "password": password})),
        );
        assert_eq!(status, 200, "login {account}: {v}");
        (
            v["token"]["access"].as_str().unwrap().to_string(),
            v["token"]["refresh"].as_str().unwrap().to_string(),
        )
    }

    /// A PTPB call as the administrator that must succeed; returns the body.
    pub fn admin_ptpb(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.ptpb(Some(TOKEN), method, path, body);
        assert_eq!(status, 200, "{method} {path}: {v}");
        assert_eq!(v["code"], 200, "{v}");
        v
    }

    /// Make a user with the given role ids; returns its id.
    pub fn add_user(&self, account: &str, password: &str, roles: &[i64]) -> i64 {
        let v = self.admin_ptpb(
            "POST",
            "/api/rbac/user/add/",
            Some(serde_json::json!({
                "account": account, "password": password, "name": account,
                "status": true, "roles": roles,
            })),
        );
        v["detail"]["id"].as_i64().unwrap()
    }

    /// The id of a role by code (`Customer`, `Administrator`, …).
    pub fn role_id(&self, code: &str) -> i64 {
        let v = self.admin_ptpb("GET", "/api/rbac/role/get/?all=true", None);
        v["detail"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["code"] == code)
            .unwrap_or_else(|| panic!("no role {code}: {v}"))["id"]
            .as_i64()
            .unwrap()
    }

    /// Make a role granting these permission codes; returns its id.
    pub fn add_role(&self, code: &str, permissions: &[&str]) -> i64 {
        let (_, catalogue) = self.ptpb(Some(TOKEN), "GET", "/api/rbac/perm/", None);
        let ids: Vec<i64> = permissions
            .iter()
            .map(|c| {
                catalogue["detail"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["code"] == *c)
                    .unwrap_or_else(|| panic!("no permission {c}"))["id"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        let v = self.admin_ptpb(
            "POST",
            "/api/rbac/role/add/",
            Some(serde_json::json!({"name": code, "code": code, "perms": ids})),
        );
        v["detail"]["id"].as_i64().unwrap()
    }

    /// Stop the controller as `systemctl stop` does (SIGTERM) and wait
    /// for it to exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ironidc still runs 120 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kill the controller without a clean shutdown (VMs must survive).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll until `f` returns true or `secs` pass.
/// The serial console log of the VM in `vm_dir` so far.
pub fn serial(vm_dir: &Path) -> String {
    std::fs::read_to_string(vm_dir.join("serial.log")).unwrap_or_default()
}

/// Run a program in VM `vm` of host `h1` through the guest agent;
/// (exit code, stdout).
pub fn guest_exec(s: &Server, vm: &str, program: &str, args: &[&str]) -> (i64, String) {
    let v = s.ok(
        "POST",
        &format!("/api/client/exec/h1/{vm}"),
        Some(serde_json::json!({"command": program, "args": args, "timeout": 20})),
    );
    (
        v["exit_code"].as_i64().unwrap_or(-1),
        v["stdout"].as_str().unwrap_or_default().to_string(),
    )
}

/// Whether the guest agent of VM `vm` of host `h1` answers.
pub fn agent_answers(s: &Server, vm: &str) -> bool {
    let (status, v) = s.call("GET", &format!("/api/client/agent/h1/{vm}"), None);
    status == 200 && v["data"]["available"] == true
}

pub fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("timed out after {secs} s waiting for {what}");
}

pub fn host_body(name: &str, images: &Path, os_file: &str) -> Value {
    serde_json::json!({
        "name": name,
        "type": "QEMUServer",
        "config": {
            "images_path": images.to_string_lossy(),
            "system_maps": { "demo": [os_file, 0] },
            "server_pass": "host-secret-password",
            "ports_start": 20000,
            "ports_close": 20100,
            "server_plan": { "cpu_num": 4, "mem_num": 2048, "hdd_num": 20480 }
        }
    })
}
