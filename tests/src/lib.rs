//! The integration-test harness: real processes on loopback.
//!
//! - [`ChildGuard`]: a child process stopped with SIGTERM (then SIGKILL after
//!   a deadline) when dropped, with its logs in a temporary directory.
//! - [`StorageNode`]: a `zaqar storage` process on a free port.
//! - [`RedisServer`]: a private `redis-server` on a free port, for tests that
//!   stop or restart their backend.
//! - [`test_redis_url`]: the shared test Redis that `deploy/test.sh` starts.
//!
//! Children bind port 0 and report their address; readiness is polled with a
//! deadline, never slept for.

// Test harness: a failed step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

/// How long a child may take to become ready.
pub const READY_DEADLINE: Duration = Duration::from_secs(20);
/// How long a child may take to exit after SIGTERM before it is killed.
pub const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// The shared test Redis (`ZAQAR_TEST_REDIS_URL`). A missing URL fails the
/// test: nothing is skipped silently.
pub fn test_redis_url() -> String {
    std::env::var("ZAQAR_TEST_REDIS_URL")
        .expect("ZAQAR_TEST_REDIS_URL must name a test Redis (deploy/test.sh starts one)")
}

/// The `zaqar` binary: `ZAQAR_BIN`, else `zaqar` in the target directory
/// holding this test binary (built by `cargo build --bin zaqar` first).
pub fn zaqar_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("ZAQAR_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let bin = profile_dir.join("zaqar");
    assert!(
        bin.is_file(),
        "{} not found: run `cargo build --bin zaqar` first or set ZAQAR_BIN",
        bin.display()
    );
    bin
}

/// A child process that is stopped when dropped.
pub struct ChildGuard {
    child: Child,
    name: String,
    /// Keeps the log directory alive while the child runs.
    logs: TempDir,
}

impl ChildGuard {
    /// Spawns `command` with stderr in `<logs>/<name>.log`.
    pub fn spawn(name: &str, mut command: Command) -> anyhow::Result<ChildGuard> {
        let logs = tempfile::Builder::new()
            .prefix(&format!("zaqar-it-{name}-"))
            .tempdir()?;
        let log = std::fs::File::create(logs.path().join(format!("{name}.log")))?;
        let child = command
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(ChildGuard {
            child,
            name: name.to_string(),
            logs,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory holding the child's logs.
    pub fn log_dir(&self) -> &Path {
        self.logs.path()
    }

    /// The child's stderr so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.logs.path().join(format!("{}.log", self.name)))
            .unwrap_or_default()
    }

    /// Takes the child's stdout pipe, when it was piped.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Sends SIGTERM and waits up to `deadline`; returns the exit status, or
    /// `None` when the child had to be killed.
    pub fn terminate(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let started = Instant::now();
        while started.elapsed() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// Kills the child at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.terminate(STOP_DEADLINE);
    }
}

/// Reads the child's stdout until a line `listening on ADDR`.
fn wait_for_address(guard: &mut ChildGuard) -> anyhow::Result<String> {
    use std::io::BufRead;
    let stdout = guard.take_stdout().context("stdout was not piped")?;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(address) = line.strip_prefix("listening on ") {
                let _ = sender.send(address.trim().to_string());
                return;
            }
        }
    });
    match receiver.recv_timeout(READY_DEADLINE) {
        Ok(address) => Ok(address),
        Err(_) => bail!("{} did not start:\n{}", guard.name, guard.log()),
    }
}

/// A `zaqar storage` process.
pub struct StorageNode {
    /// The process.
    pub guard: ChildGuard,
    /// `host:port` it listens on.
    pub address: String,
}

impl StorageNode {
    /// Starts a node in front of `backend` on a free loopback port.
    pub fn start(backend: &str) -> anyhow::Result<StorageNode> {
        let mut command = Command::new(zaqar_bin());
        command
            .args(["storage", "--listen", "127.0.0.1:0", "--backend", backend])
            .env("RUST_LOG", "info")
            .env("ZAQAR_STORAGE__SHUTDOWN_GRACE", "500ms")
            .stdout(Stdio::piped());
        let mut guard = ChildGuard::spawn("storage", command)?;
        let address = wait_for_address(&mut guard)?;
        Ok(StorageNode { guard, address })
    }

    /// The node's gRPC URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

/// Returns a loopback port that was free a moment ago. Only for servers that
/// cannot bind port 0 and report it (redis-server); the tiny race is
/// retried by [`RedisServer::start`].
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A private `redis-server` with its own data directory.
pub struct RedisServer {
    /// The process.
    pub guard: ChildGuard,
    /// Its port.
    pub port: u16,
    data: TempDir,
}

impl RedisServer {
    /// Starts a Redis with append-only persistence on a free port.
    pub fn start() -> anyhow::Result<RedisServer> {
        let data = tempfile::Builder::new()
            .prefix("zaqar-it-redis-")
            .tempdir()?;
        let mut last_error = None;
        for _ in 0..5 {
            let port = free_port()?;
            match Self::start_on(port, data.path()) {
                Ok(guard) => return Ok(RedisServer { guard, port, data }),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("redis did not start")))
    }

    /// Restarts the server on the same port and data directory.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.guard.terminate(STOP_DEADLINE);
        self.guard = Self::start_on(self.port, self.data.path())?;
        Ok(())
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn start_on(port: u16, dir: &Path) -> anyhow::Result<ChildGuard> {
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--dir"])
            .arg(dir)
            .args(["--save", "", "--appendonly", "yes", "--daemonize", "no"])
            .stdout(Stdio::null());
        let mut guard = ChildGuard::spawn("redis", command)?;
        let started = Instant::now();
        while started.elapsed() < READY_DEADLINE {
            let ping = Command::new("redis-cli")
                .args(["-p", &port.to_string(), "ping"])
                .output()?;
            if String::from_utf8_lossy(&ping.stdout).trim() == "PONG" {
                return Ok(guard);
            }
            if let Ok(Some(_)) = guard.child.try_wait() {
                bail!("redis-server exited:\n{}", guard.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        guard.kill();
        bail!("redis-server on port {port} did not answer PING")
    }
}
