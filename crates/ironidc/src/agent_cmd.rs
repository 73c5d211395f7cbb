//! `ironidc agent`: run on a hypervisor host; serves that host's QEMU
//! engine to controllers (see crates/agent).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ironidc_agent::identity::{Identity, Loaded};
use ironidc_engine::qemu::{QemuEngine, QemuOptions};

#[derive(clap::Args)]
pub struct AgentArgs {
    /// Address to listen on, e.g. 0.0.0.0:1881.
    #[arg(long, env = "IRONIDC_AGENT_LISTEN")]
    listen: SocketAddr,
    /// Where the agent keeps its certificate, key and secret hash.
    #[arg(long, env = "IRONIDC_AGENT_DATA_DIR")]
    data_dir: PathBuf,
}

pub fn run(args: AgentArgs) -> Result<(), Box<dyn std::error::Error>> {
    crate::serve::init_logging("info");
    let identity = match Identity::load_or_create(&args.data_dir)? {
        Loaded::Created(identity, token) => {
            // The only time the secret exists in clear outside the
            // controller: it is not stored here, only its hash.
            println!("enrolment token: {}", token.format());
            println!("(shown once: put it in the host's config.server_pass on the controller)");
            identity
        }
        Loaded::Existing(identity) => {
            println!(
                "agent certificate sha256: {}",
                hex_string(&identity.fingerprint())
            );
            identity
        }
    };
    let identity = Arc::new(identity);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = ironidc_agent::server::bind(args.listen).await?;
        let engine = Arc::new(QemuEngine::new(QemuOptions::default()));
        let router = ironidc_agent::server::router(engine, identity.clone());
        println!("listening on {}", args.listen);
        tracing::info!(listen = %args.listen, "agent serving");
        tokio::select! {
            served = ironidc_agent::server::serve(listener, identity, router) => served?,
            () = crate::serve::shutdown_signal() => tracing::info!("agent stopping"),
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
