//! The `ironidc` binary: `serve` (the controller), `agent` (a remote
//! host's side), `user` (accounts from
//! the console), `image demo` (a bootable demo image built from Debian
//! packages).

mod access;
mod agent_cmd;
mod api_listener;
mod config;
mod connections;
mod operations;
mod progress;
mod serve;
mod user_cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ironidc",
    version,
    about = "A virtualization control plane for IDC and VPS operators"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller: the HTTP API over the local QEMU engine.
    Serve(Box<serve::ServeArgs>),
    /// Run on a hypervisor host: serve its QEMU engine to controllers over
    /// TLS. The first start prints the enrolment token.
    Agent(agent_cmd::AgentArgs),
    /// Manage users on the controller's database (first operator steps).
    User(user_cli::UserArgs),
    /// Build OS images.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build `DIR/demo.qcow2`: a Debian kernel and a busybox userland that
    /// boots to a shell on the serial console, from Debian packages.
    Demo {
        /// Output directory.
        dir: PathBuf,
        /// Where downloaded packages are cached between builds.
        #[arg(long, env = "IRONIDC_IMAGE_CACHE")]
        cache: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // One TLS provider for the whole process (proxy, ACME client, database
    // TLS), before anything can ask rustls for the default.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Agent(args) => agent_cmd::run(args),
        Command::User(args) => user_cli::run(args),
        Command::Image {
            command: ImageCommand::Demo { dir, cache },
        } => build_demo(dir, cache),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ironidc: {e}");
            ExitCode::FAILURE
        }
    }
}

fn build_demo(dir: PathBuf, cache: Option<PathBuf>) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(&dir)?;
    let cache = cache.unwrap_or_else(|| dir.join(".cache"));
    let out = dir.join("demo.qcow2");
    let bar = progress::BarProgress::new();
    let opts = ironidc_engine::image::DemoImageOptions::new(cache);
    let image = ironidc_engine::image::build_demo_image(&out, &opts, &bar)?;
    bar.finish("done");
    println!(
        "built {} (kernel {})",
        image.qcow2_path.display(),
        image.kernel_version
    );
    println!("use it in a host config: \"images_path\": \"{}\", \"system_maps\": {{\"demo\": [\"demo.qcow2\", 0]}}",
        std::fs::canonicalize(&dir).unwrap_or(dir).display());
    Ok(())
}
