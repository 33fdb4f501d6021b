//! `zaqar`: the one binary of the messaging service, a subcommand per role.
//!
//! The crates are libraries; this binary only parses flags, loads
//! configuration, sets up logging and wires the roles together.

mod api;
mod bench;
mod settings;
mod shutdown;
mod standalone;
mod storage;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Request handling allocates many small, short-lived buffers; mimalloc
/// serves them with less contention and fragmentation than the system
/// allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Zaqar v2 compatible messaging service.
#[derive(Debug, Parser)]
#[command(name = "zaqar", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the whole service in one process: the HTTP API on an embedded,
    /// durable store (or on the given backend), nothing else to install.
    Standalone {
        /// Address of the HTTP API (port 0 picks a free port; the bound
        /// address is printed on stdout as `listening on ADDR`).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// The backend URI, e.g. `redis://127.0.0.1:6379/0`; by default the
        /// embedded store in `--data-dir`.
        #[arg(long)]
        backend: Option<String>,
        /// Directory of the embedded store (default
        /// `$XDG_DATA_HOME/zaqar`, else `~/.local/share/zaqar`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// A TOML configuration file (see `deploy/config/standalone.toml`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Runs an HTTP API node that forwards every call to a storage node.
    Api {
        /// Address of the HTTP API (port 0 picks a free port; the bound
        /// address is printed on stdout as `listening on ADDR`).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// gRPC URL of the storage node, e.g. `http://127.0.0.1:7070`
        /// (single-pool deployments).
        #[arg(long)]
        storage: Option<String>,
        /// etcd endpoints (comma-separated) of the cluster catalog (pooled
        /// deployments).
        #[arg(long, value_delimiter = ',')]
        etcd: Option<Vec<String>>,
        /// A TOML configuration file (see `deploy/config/api.toml`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Runs a storage node: serves the storage protocol over gRPC in front of
    /// one pool (a Redis server).
    Storage {
        /// Address to listen on (use port 0 to pick a free port; the bound
        /// address is printed on stdout as `listening on ADDR`).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// The pool's backend URI, e.g. `redis://127.0.0.1:6379/0`.
        #[arg(long)]
        backend: Option<String>,
        /// etcd endpoints (comma-separated) to register this node in.
        #[arg(long, value_delimiter = ',')]
        etcd: Option<Vec<String>>,
        /// A TOML configuration file (see `deploy/config/storage.toml`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Loads any Zaqar v2 endpoint (this service or OpenStack Zaqar) with
    /// producers, consumers and observers and reports throughput and
    /// latency.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(matches!(cli.command, Command::Bench(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Standalone {
                listen,
                backend,
                data_dir,
                config,
            } => standalone::run(config.as_deref(), listen, backend, data_dir).await,
            Command::Api {
                listen,
                storage,
                etcd,
                config,
            } => api::run(config.as_deref(), listen, storage, etcd).await,
            Command::Storage {
                listen,
                backend,
                etcd,
                config,
            } => storage::run(config.as_deref(), listen, backend, etcd).await,
            Command::Bench(args) => bench::run(args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr; `RUST_LOG` filters (default `info`, `warn` for tools),
/// `ZAQAR_LOG_FORMAT=json` switches to JSON lines.
fn init_logging(tool: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if tool { "warn" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("ZAQAR_LOG_FORMAT").is_ok_and(|format| format == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
