//! `ironidc serve`: open the store, wire the service layer to the engines,
//! reconcile with what runs, and serve the HTTP faces.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ironidc_core::cluster_store::instance_id;
use ironidc_core::secrets::SecretBox;
use ironidc_core::service::TokenBootstrap;
use ironidc_core::{EngineRegistry, ServiceOptions, Services};
use ironidc_engine::qemu::{QemuEngine, QemuOptions};
use ironidc_net::acme::AcmeOptions;
use ironidc_net::proxy::{ProxyHandle, ProxyOptions, ReverseProxy};
use ironidc_net::{HostNetwork, HostNetworkOptions};
use ironidc_store::SqlStore;

use crate::config::{
    default_controller_name, listener, sqlite_url, FileConfig, ServeConfig, DEFAULT_ACME_DIRECTORY,
    DEFAULT_LISTEN, DEFAULT_PROXY_HTTP, DEFAULT_PROXY_HTTPS,
};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Configuration file (default: ./ironidc.toml when present).
    #[arg(long, global = true, env = "IRONIDC_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:1880].
    #[arg(long, global = true, env = "IRONIDC_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory: database, VM disks, sockets [default: ./data].
    #[arg(long, global = true, env = "IRONIDC_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// sqlite://FILE or postgres://… [default: SQLite in the data directory].
    #[arg(long, global = true, env = "IRONIDC_DATABASE_URL")]
    database_url: Option<String>,
    /// This controller's name when several share one PostgreSQL database
    /// (logs, `job_owner` in /api/system/statis) [default: host name:port].
    #[arg(long, global = true, env = "IRONIDC_CONTROLLER_NAME")]
    controller_name: Option<String>,
    /// Admin bearer token, stored (hashed) on first start only.
    #[arg(long, global = true, env = "IRONIDC_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Seconds `stop` waits for the guest to power off [default: 60].
    #[arg(long, global = true, env = "IRONIDC_STOP_TIMEOUT")]
    stop_timeout: Option<u64>,
    /// Seconds between reconciliations of VM states and the network [default: 15].
    #[arg(long, global = true, env = "IRONIDC_RECONCILE_INTERVAL")]
    reconcile_interval: Option<u64>,
    /// Reverse proxy HTTP listener, or `off` [default: 0.0.0.0:80].
    #[arg(long, global = true, env = "IRONIDC_PROXY_HTTP")]
    proxy_http: Option<String>,
    /// Reverse proxy HTTPS listener, or `off` [default: 0.0.0.0:443].
    #[arg(long, global = true, env = "IRONIDC_PROXY_HTTPS")]
    proxy_https: Option<String>,
    /// ACME directory for `letsencrypt` bindings [default: Let's Encrypt].
    #[arg(long, global = true, env = "IRONIDC_ACME_DIRECTORY")]
    acme_directory: Option<String>,
    /// Contact e-mail of the ACME account.
    #[arg(long, global = true, env = "IRONIDC_ACME_EMAIL")]
    acme_email: Option<String>,
    /// PEM file of a CA trusted for the ACME directory's HTTPS (a private CA).
    #[arg(long, global = true, env = "IRONIDC_ACME_CA_FILE")]
    acme_ca_file: Option<PathBuf>,
    #[command(flatten)]
    access: crate::access::AccessArgs,
    #[command(flatten)]
    operations: crate::operations::OperationsArgs,
    #[command(flatten)]
    connections: crate::connections::ConnectionArgs,
}

impl ServeArgs {
    pub fn resolve(self) -> Result<ServeConfig, Box<dyn std::error::Error>> {
        let file = FileConfig::load(self.config.as_deref())?;
        let mut access = self.access.resolve(&file);
        let listen = match self.listen.or(file.listen) {
            Some(a) => a,
            None => DEFAULT_LISTEN.parse()?,
        };
        let operations = self.operations.resolve(&file, listen)?;
        let connections = self.connections.resolve(&file);
        let data_dir = self
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("data"));
        std::fs::create_dir_all(&data_dir)?;
        let data_dir = std::fs::canonicalize(&data_dir)?;
        Ok(ServeConfig {
            listen,
            database_url: self
                .database_url
                .or(file.database_url)
                .unwrap_or_else(|| sqlite_url(&data_dir)),
            controller_name: self
                .controller_name
                .or(file.controller_name)
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| default_controller_name(listen)),
            token: self.token.or(file.token).filter(|t| !t.is_empty()),
            stop_timeout_secs: self.stop_timeout.or(file.stop_timeout_secs).unwrap_or(60),
            reconcile_interval_secs: self
                .reconcile_interval
                .or(file.reconcile_interval_secs)
                .unwrap_or(15)
                .max(1),
            proxy_http: listener(
                "proxy_http",
                &self
                    .proxy_http
                    .or(file.proxy_http)
                    .unwrap_or_else(|| DEFAULT_PROXY_HTTP.into()),
            )?,
            proxy_https: listener(
                "proxy_https",
                &self
                    .proxy_https
                    .or(file.proxy_https)
                    .unwrap_or_else(|| DEFAULT_PROXY_HTTPS.into()),
            )?,
            acme_directory: self
                .acme_directory
                .or(file.acme_directory)
                .unwrap_or_else(|| DEFAULT_ACME_DIRECTORY.into()),
            acme_email: self
                .acme_email
                .or(file.acme_email)
                .filter(|e| !e.is_empty()),
            acme_ca_file: self.acme_ca_file.or(file.acme_ca_file),
            access: {
                operations.apply_api(&mut access.api);
                access
            },
            operations,
            connections,
            data_dir,
        })
    }
}

pub fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    init_logging("info,sqlx=warn");
    let config = args.resolve()?;
    // Room for the connection caps: they must bind before descriptors
    // run out (the soft limit is often 1024).
    match ironidc_net::http_conn::raise_open_files_limit() {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open files limit"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(config))
}

/// The service layer over the configured store, engines and network; the
/// reverse proxy it drives is returned for `serve` to start.
pub async fn open_services(
    config: &ServeConfig,
) -> Result<(Services, ReverseProxy), Box<dyn std::error::Error>> {
    let store = SqlStore::connect(&config.database_url)
        .await?
        .with_controller(instance_id(&config.controller_name));
    let secrets = SecretBox::load_or_create(&config.data_dir.join("secret.key"))?;
    let engines =
        EngineRegistry::default().with("qemu", Arc::new(QemuEngine::new(QemuOptions::default())));
    let mut opts = ServiceOptions::new(config.data_dir.clone());
    opts.controller_name = config.controller_name.clone();
    opts.stop_timeout = Duration::from_secs(config.stop_timeout_secs);
    opts.controller_ports.extend(
        [Some(config.listen), config.proxy_http, config.proxy_https]
            .into_iter()
            .flatten()
            .map(|a| a.port()),
    );
    config.access.apply(&mut opts);
    config.operations.apply(&mut opts);
    let proxy = ReverseProxy::new();
    let acme_root = match &config.acme_ca_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("acme_ca_file {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let network = HostNetwork::new(
        HostNetworkOptions {
            run_dir: config.data_dir.join("run"),
            acme: Some(AcmeOptions {
                directory_url: config.acme_directory.clone(),
                contact_email: config.acme_email.clone(),
                extra_root_pem: acme_root,
                account_file: config.data_dir.join("acme-account.json"),
            }),
        },
        proxy.clone(),
    );
    let services = Services::new(Arc::new(store), engines, secrets, Arc::new(network), opts);
    // Hosts whose config names server_addr are driven through their agent.
    services.set_remote_engines(Arc::new(ironidc_agent::client::AgentConnector));
    Ok((services, proxy))
}

async fn serve(config: ServeConfig) -> Result<(), Box<dyn std::error::Error>> {
    let (services, proxy) = open_services(&config).await?;
    // Listen before anything can be cached, so no change is missed.
    services.watch_invalidations().await?;

    let (token, password) = services
        .initialize(
            config.token.as_deref(),
            config.access.admin_password.as_deref(),
        )
        .await?;
    match token {
        TokenBootstrap::Generated(token) => {
            // Shown once, on the terminal only: the store keeps a hash.
            println!("ironidc: generated admin token (shown once, store it now): {token}");
        }
        TokenBootstrap::Configured => tracing::info!("admin token set from configuration"),
        TokenBootstrap::Existing => {}
    }
    if let Some(password) = password {
        println!("ironidc: generated password of user administrator (shown once, store it now): {password}");
    }

    // One controller of those sharing the database runs the jobs; the
    // start-up ones too (another controller's running tasks are not
    // interrupted, and its VMs are not this one's to re-attach).
    let owner = services.claim_jobs().await;
    tracing::info!(
        controller = services.controller(),
        jobs = owner,
        "controller started"
    );
    if owner {
        settle_at_start(&services).await?;
    } else {
        tracing::info!("another controller runs the background jobs; this one serves the API");
    }
    // The proxy listens before the network is reconciled, so ACME renewals
    // at start can answer their challenges.
    let _proxy = serve_proxy(&proxy, &config).await;
    if owner {
        match services.reconcile_network().await {
            Ok(report) => tracing::info!(?report, "network restored"),
            Err(e) => {
                tracing::error!(error = %e, "network reconcile failed; retrying every interval")
            }
        }
    }
    // Routes live in this process: load them once; binding changes update them.
    if let Err(e) = services.refresh_proxy_routes().await {
        tracing::error!(error = %e, "reverse proxy routes could not be loaded");
    }
    services.spawn_lease_keeper();
    spawn_reconciler(
        services.clone(),
        Duration::from_secs(config.reconcile_interval_secs),
    );
    spawn_certificate_renewal(services.clone());
    services.spawn_monitor();

    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, data_dir = %config.data_dir.display(), "ironidc serving");
    let app = ironidc_api::app(services.clone(), &config.access.api)?;
    crate::api_listener::serve(listener, app, config.connections, shutdown_signal()).await;
    // Backups, restores and reinstalls run on after their requests: let
    // them end; what outlasts the wait is settled by the next start.
    let left = services.finish_background(BACKGROUND_WAIT).await;
    if left > 0 {
        tracing::warn!(
            tasks = left,
            "background operations still running at exit; the next start settles them"
        );
    }
    services.leave_cluster().await;
    // VMs are separate processes and keep running; the next start re-attaches.
    tracing::info!("ironidc stopped; VMs keep running");
    Ok(())
}

/// The start-up jobs of the jobs owner: settle interrupted tasks and
/// re-attach to running VMs.
async fn settle_at_start(services: &Services) -> Result<(), Box<dyn std::error::Error>> {
    let recovered = services.recover_interrupted_tasks().await?;
    if recovered.completed + recovered.undone + recovered.failed > 0 {
        tracing::warn!(
            ?recovered,
            "tasks interrupted by the previous stop were completed or undone"
        );
    }
    let report = services.reconcile_vm_states().await?;
    tracing::info!(
        checked = report.checked,
        changed = report.changed,
        "re-attached to running VMs"
    );
    Ok(())
}

/// Every interval, while this controller runs the jobs: settle tasks of
/// controllers that died, and bring VM states and the network in line.
fn spawn_reconciler(services: Services, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            if !services.owns_jobs() {
                continue;
            }
            match services.recover_interrupted_tasks().await {
                Ok(r) if r.completed + r.undone + r.failed > 0 => {
                    tracing::warn!(recovered = ?r, "tasks of a stopped controller were completed or undone")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "task recovery failed"),
            }
            if let Err(e) = services.reconcile_vm_states().await {
                tracing::warn!(error = %e, "reconcile failed");
            }
            if let Err(e) = services.reconcile_network().await {
                tracing::warn!(error = %e, "network reconcile failed");
            }
        }
    });
}

/// Start the reverse proxy. A port that cannot be bound (not root, in use)
/// disables the proxy with an error in the log; the API keeps serving.
async fn serve_proxy(proxy: &ReverseProxy, config: &ServeConfig) -> Option<ProxyHandle> {
    if config.proxy_http.is_none() && config.proxy_https.is_none() {
        return None;
    }
    let opts = ProxyOptions {
        http: config.proxy_http,
        https: config.proxy_https,
        limits: config.connections,
    };
    match proxy.serve(opts).await {
        Ok(handle) => {
            tracing::info!(http = ?handle.http, https = ?handle.https, "reverse proxy serving");
            Some(handle)
        }
        Err(e) => {
            tracing::error!(error = %e, "reverse proxy disabled: cannot listen (set proxy_http/proxy_https, or off)");
            None
        }
    }
}

/// How often the renewal loop looks whether renewals are due.
const RENEWAL_CHECK: Duration = Duration::from_secs(600);
/// Renewals run this often (and at start, or when this controller takes
/// the jobs over).
const RENEWAL_EVERY: Duration = Duration::from_secs(12 * 3600);

/// Renew certificates twice a day, on the controller running the jobs.
fn spawn_certificate_renewal(services: Services) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RENEWAL_CHECK);
        let mut last: Option<tokio::time::Instant> = None;
        loop {
            tick.tick().await;
            if !services.owns_jobs() {
                // Whoever takes the jobs over renews at once.
                last = None;
                continue;
            }
            if last.is_some_and(|at| at.elapsed() < RENEWAL_EVERY) {
                continue;
            }
            last = Some(tokio::time::Instant::now());
            match services.renew_certificates().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(renewed = n, "certificates renewed"),
                Err(e) => tracing::warn!(error = %e, "certificate renewal failed"),
            }
        }
    });
}

/// How long a stopping controller waits for background operations.
const BACKGROUND_WAIT: Duration = Duration::from_secs(60);

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Log to stderr, filtered by `IRONIDC_LOG` or `default`.
pub fn init_logging(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IRONIDC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
}
