//! ACME issuance end to end against pebble (Let's Encrypt's test CA): the
//! proxy answers the HTTP-01 challenge, `issue` returns a chain that the
//! proxy then serves over HTTPS to a client trusting pebble's root.
//!
//! pebble validates by resolving the domain through `pebble-challtestsrv`
//! (answering 127.0.0.1 for every name) and connecting to `httpPort`, which
//! is set to the proxy's HTTP port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdTcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use ironidc_net::acme::{self, AcmeError, AcmeOptions};
use ironidc_net::proxy::{Http01Challenges, ProxyOptions, ReverseProxy, Route};
use ironidc_net::tls;

const PEBBLE: &str = "/usr/bin/pebble";
const CHALLTESTSRV: &str = "/usr/bin/pebble-challtestsrv";

/// Kills the pebble processes however the test ends.
struct Processes {
    children: Vec<(&'static str, Child)>,
    logs: Vec<PathBuf>,
}

impl Processes {
    fn spawn(&mut self, name: &'static str, command: &mut Command, dir: &Path) {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.children.push((name, child));
        self.logs.push(log);
    }

    /// Logs of both processes, for failure messages.
    fn logs(&self) -> String {
        self.logs
            .iter()
            .map(|path| {
                format!(
                    "==== {}\n{}",
                    path.display(),
                    std::fs::read_to_string(path).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn assert_running(&mut self) {
        for (name, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{name} exited early with {status}\n{}", {
                    let logs: Vec<String> = self
                        .logs
                        .iter()
                        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                        .collect();
                    logs.join("\n")
                });
            }
        }
    }
}

impl Processes {
    fn stop(&mut self, name: &str) {
        let index = self.children.iter().position(|(n, _)| *n == name).unwrap();
        let (_, mut child) = self.children.remove(index);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

struct PebbleArgs {
    config: PathBuf,
    dns: String,
}

impl PebbleArgs {
    fn spawn(&self, processes: &mut Processes, name: &'static str, dir: &Path) {
        processes.spawn(
            name,
            Command::new(PEBBLE)
                .arg("-config")
                .arg(&self.config)
                .arg("-dnsserver")
                .arg(&self.dns)
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0"),
            dir,
        );
    }
}

async fn wait_for_directory(processes: &mut Processes, client: &reqwest::Client, url: &str) {
    let started = Instant::now();
    loop {
        processes.assert_running();
        match client.get(url).send().await {
            Ok(response) if response.status().is_success() => return,
            _ if started.elapsed() > Duration::from_secs(20) => {
                panic!("pebble did not come up in 20 s\n{}", processes.logs())
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_tcp_port() -> u16 {
    StdTcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port free for both UDP and TCP (the fake DNS server listens on both).
fn free_dns_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if StdTcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// CA and server certificate (localhost, 127.0.0.1) for pebble's own HTTPS.
fn pebble_tls(dir: &Path) -> (PathBuf, PathBuf, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pebble listener test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let cert_path = dir.join("pebble-cert.pem");
    let key_path = dir.join("pebble-key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path, ca.pem())
}

fn client_trusting(pem: &str) -> reqwest::ClientBuilder {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .use_preconfigured_tls(config)
}

async fn backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        b"hello from the acme site",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_with_pebble_and_serve_it() {
    if !Path::new(PEBBLE).exists() || !Path::new(CHALLTESTSRV).exists() {
        if std::env::var_os("CI").is_some() {
            panic!("pebble not installed ({PEBBLE}, {CHALLTESTSRV}); CI must run this test");
        }
        println!("skipped: pebble not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    // The proxy first: its HTTP port is pebble's httpPort.
    let proxy = ReverseProxy::new();
    let handle = proxy
        .serve(ProxyOptions {
            http: Some("127.0.0.1:0".parse().unwrap()),
            https: Some("127.0.0.1:0".parse().unwrap()),
            limits: Default::default(),
        })
        .await
        .unwrap();
    let http_port = handle.http.unwrap().port();

    let (cert_path, key_path, listener_ca_pem) = pebble_tls(dir.path());
    let acme_port = free_tcp_port();
    let management_port = free_tcp_port();
    let dns_port = free_dns_port();
    let challtest_management_port = free_tcp_port();
    let config = serde_json::json!({
        "pebble": {
            "listenAddress": format!("127.0.0.1:{acme_port}"),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": cert_path,
            "privateKey": key_path,
            "httpPort": http_port,
            "tlsPort": free_tcp_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false
        }
    });
    let config_path = dir.path().join("pebble-config.json");
    std::fs::write(&config_path, config.to_string()).unwrap();

    let mut processes = Processes {
        children: Vec::new(),
        logs: Vec::new(),
    };
    // Only the fake DNS is needed: every name resolves to 127.0.0.1 (and no
    // AAAA, since the proxy listens on IPv4 loopback only).
    processes.spawn(
        "pebble-challtestsrv",
        Command::new(CHALLTESTSRV)
            .arg("-dns01")
            .arg(format!("127.0.0.1:{dns_port}"))
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .arg("-management")
            .arg(format!("127.0.0.1:{challtest_management_port}"))
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""]),
        dir.path(),
    );
    let pebble_args = PebbleArgs {
        config: config_path,
        dns: format!("127.0.0.1:{dns_port}"),
    };
    pebble_args.spawn(&mut processes, "pebble", dir.path());

    // Wait until pebble answers its directory over HTTPS.
    let directory_url = format!("https://127.0.0.1:{acme_port}/dir");
    let pebble_client = client_trusting(&listener_ca_pem).build().unwrap();
    let started = Instant::now();
    wait_for_directory(&mut processes, &pebble_client, &directory_url).await;
    // The fake DNS server has no readiness probe on its UDP port; its
    // management port is opened after the DNS listeners.
    while tokio::net::TcpStream::connect(("127.0.0.1", challtest_management_port))
        .await
        .is_err()
    {
        processes.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "pebble-challtestsrv did not come up\n{}",
            processes.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let account_file = dir.path().join("acme/account.json");
    let opts = AcmeOptions {
        directory_url,
        contact_email: Some("admin@site.test".into()),
        extra_root_pem: Some(listener_ca_pem.clone()),
        account_file: account_file.clone(),
    };
    let challenges = proxy.challenges();
    let pair = match acme::issue(&opts, "site.test", &challenges).await {
        Ok(pair) => pair,
        Err(e) => panic!("issue failed: {e}\n{}", processes.logs()),
    };
    assert!(challenges.is_empty(), "challenge tokens left behind");
    let info = tls::inspect(&pair, "site.test").unwrap();
    assert_eq!(info.names, vec!["site.test".to_string()]);
    assert!(
        !tls::needs_renewal(info.not_after, unix_now()),
        "fresh certificate already due for renewal"
    );
    assert!(
        pair.cert_pem.matches("BEGIN CERTIFICATE").count() >= 2,
        "chain includes the intermediate"
    );

    // Account file: private, and reused by the next issuance.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&account_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let account_json = std::fs::read(&account_file).unwrap();
    let second = match acme::issue(&opts, "www.site.test", &challenges).await {
        Ok(pair) => pair,
        Err(e) => panic!("second issue failed: {e}\n{}", processes.logs()),
    };
    tls::inspect(&second, "www.site.test").unwrap();
    assert_eq!(std::fs::read(&account_file).unwrap(), account_json);

    // Tokens published where the proxy does not look: pebble gets a 404,
    // the order fails with the CA's reason, and the tokens are cleaned up.
    let unserved = Http01Challenges::new();
    match acme::issue(&opts, "fail.site.test", &unserved).await {
        Err(AcmeError::ValidationFailed { domain, detail }) => {
            assert_eq!(domain, "fail.site.test");
            assert!(detail.contains("404"), "{detail}");
        }
        other => panic!("expected a validation failure, got {other:?}"),
    }
    assert!(unserved.is_empty());

    // pebble forgets accounts when restarted: the stored account is then
    // unknown, and issue() registers a new one and carries on.
    processes.stop("pebble");
    pebble_args.spawn(&mut processes, "pebble-restarted", dir.path());
    wait_for_directory(&mut processes, &pebble_client, &opts.directory_url).await;
    let pair = match acme::issue(&opts, "site.test", &challenges).await {
        Ok(pair) => pair,
        Err(e) => panic!(
            "issue after pebble restart failed: {e}\n{}",
            processes.logs()
        ),
    };
    assert_ne!(std::fs::read(&account_file).unwrap(), account_json);

    // Serve the issued certificate and fetch through it, trusting only the
    // root of the running pebble (a new one on every start).
    let root_pem = pebble_client
        .get(format!("https://127.0.0.1:{management_port}/roots/0"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let errors = proxy.set_routes(vec![Route {
        domain: "site.test".into(),
        backend: backend().await,
        tls: Some(pair),
        https_only: true,
    }]);
    assert!(errors.is_empty(), "{errors:?}");
    let https = handle.https.unwrap();
    let site_client = client_trusting(&root_pem)
        .resolve("site.test", https)
        .build()
        .unwrap();
    let response = site_client
        .get(format!("https://site.test:{}/", https.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "hello from the acme site");
    drop(processes);
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
