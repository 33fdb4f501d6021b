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
    /// Worker threads of the async runtime (default: one per CPU core, but
    /// one for `bench`, which should take as little as it can from the
    /// machine it measures).
    #[arg(long, global = true, env = "ZAQAR_WORKER_THREADS",
          value_parser = clap::value_parser!(u16).range(1..))]
    worker_threads: Option<u16>,
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
    let runtime = match runtime(cli.worker_threads()) {
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

impl Cli {
    /// The runtime's worker threads: as given, else one for `bench`, else
    /// `None` (tokio's default: one per CPU core).
    fn worker_threads(&self) -> Option<usize> {
        self.worker_threads
            .map(usize::from)
            .or_else(|| matches!(self.command, Command::Bench(_)).then_some(1))
    }
}

/// The multi-threaded async runtime, with `threads` workers when given.
fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        builder.worker_threads(threads);
    }
    builder.enable_all().build()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_threads_default_to_one_for_bench_only() {
        let bench = Cli::try_parse_from(["zaqar", "bench", "--url", "http://h:1"]).unwrap();
        assert_eq!(bench.worker_threads(), Some(1));
        let storage = Cli::try_parse_from(["zaqar", "storage"]).unwrap();
        assert_eq!(storage.worker_threads(), None);
        let given = Cli::try_parse_from(["zaqar", "storage", "--worker-threads", "3"]).unwrap();
        assert_eq!(given.worker_threads(), Some(3));
        let bench =
            Cli::try_parse_from(["zaqar", "--worker-threads", "2", "bench", "--url", "x"]).unwrap();
        assert_eq!(bench.worker_threads(), Some(2));
        assert!(Cli::try_parse_from(["zaqar", "api", "--worker-threads", "0"]).is_err());
    }

    #[test]
    fn the_runtime_has_the_threads_asked_for() {
        let runtime = runtime(Some(3)).unwrap();
        assert_eq!(runtime.metrics().num_workers(), 3);
    }
}
