//! A private single-member etcd for integration tests.
//!
//! [`EtcdServer::start`] runs Debian's `etcd` (3.4) on two free loopback
//! ports (client and peer) with its own data directory, waits until
//! `GET /health` answers `{"health":"true"}` (and the member list names our
//! peer URL: the etcd on that port is ours), and stops it (SIGTERM, then
//! SIGKILL after [`crate::STOP_DEADLINE`]) when dropped. Outage tests use
//! [`EtcdServer::stop`] and [`EtcdServer::restart`], which keeps the ports
//! and the data.
//!
//! Layout of the temporary directory:
//! - `data/`: etcd's `--data-dir`;
//! - `etcd.log`: etcd's log across every start and restart (the current
//!   run's stderr is also in [`crate::ChildGuard::log`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::{ChildGuard, READY_DEADLINE, STOP_DEADLINE};

/// How many times [`EtcdServer::start`] picks new ports after etcd exits
/// early (another process took a port between the pick and etcd's bind).
const START_ATTEMPTS: usize = 5;

/// Per-request timeout of one readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A private single-member etcd with its own data directory.
pub struct EtcdServer {
    /// The process (declared first: stopped before the data is deleted).
    pub guard: ChildGuard,
    /// The client port (`--listen-client-urls`).
    pub client_port: u16,
    /// The peer port (`--listen-peer-urls`).
    pub peer_port: u16,
    /// Holds `data/` (the data directory) and `etcd.log`.
    data: TempDir,
}

impl EtcdServer {
    /// Starts etcd on free loopback client and peer ports and waits until it
    /// reports healthy.
    pub fn start() -> anyhow::Result<EtcdServer> {
        let data = tempfile::Builder::new()
            .prefix("zaqar-it-etcd-")
            .tempdir()?;
        let data_dir = data.path().join("data");
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            // A failed attempt may have left a member directory that names
            // the old peer port: begin each attempt with an empty one.
            match std::fs::remove_dir_all(&data_dir) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(error).context(format!("cannot clear {}", data_dir.display()));
                }
            }
            let (client_port, peer_port) = free_port_pair()?;
            match Self::start_on(client_port, peer_port, data.path())? {
                Started::Ready(guard) => {
                    return Ok(EtcdServer {
                        guard,
                        client_port,
                        peer_port,
                        data,
                    });
                }
                Started::Exited(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    /// The client URL, e.g. `http://127.0.0.1:1234`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The file holding etcd's log across restarts.
    pub fn log_path(&self) -> PathBuf {
        self.data.path().join("etcd.log")
    }

    /// Stops etcd (SIGTERM, SIGKILL after [`STOP_DEADLINE`]) and waits for
    /// it to exit; the ports and the data are kept for [`Self::restart`].
    /// Stopping a stopped server does nothing.
    pub fn stop(&mut self) {
        self.guard.terminate(STOP_DEADLINE);
    }

    /// Stops etcd if it runs, then starts it again on the same ports and
    /// data directory and waits until it reports healthy.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        match Self::start_on(self.client_port, self.peer_port, self.data.path())? {
            Started::Ready(guard) => {
                self.guard = guard;
                Ok(())
            }
            Started::Exited(error) => Err(error),
        }
    }

    /// Spawns etcd on the given ports with `root/data` as data directory
    /// and waits for health. An early exit is reported as
    /// [`Started::Exited`] (worth retrying on other ports); a process that
    /// runs but never becomes healthy is killed and reported as an error.
    fn start_on(client_port: u16, peer_port: u16, root: &Path) -> anyhow::Result<Started> {
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let mut command = Command::new("etcd");
        // etcd reads every ETCD_* variable as a flag (and refuses to start
        // when one duplicates a command-line flag).
        for (key, _) in std::env::vars_os() {
            if key.as_encoded_bytes().starts_with(b"ETCD_") {
                command.env_remove(&key);
            }
        }
        command
            .args(["--name", "n1", "--data-dir"])
            .arg(root.join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("n1={peer}")])
            .args(["--initial-cluster-state", "new", "--logger=zap"])
            .arg(format!(
                "--log-outputs=stderr,{}",
                root.join("etcd.log").display()
            ))
            .stdout(Stdio::null());
        let mut guard = ChildGuard::spawn("etcd", command)?;
        let address = SocketAddr::from(([127, 0, 0, 1], client_port));
        let started = Instant::now();
        while started.elapsed() < READY_DEADLINE {
            // Another etcd may hold the client port (taken between the pick
            // and our bind) while ours exits: only ours names our peer URL.
            if healthy(address) && is_member(address, &peer) {
                return Ok(Started::Ready(guard));
            }
            if let Ok(Some(status)) = guard.child.try_wait() {
                return Ok(Started::Exited(anyhow::anyhow!(
                    "etcd on ports {client_port}/{peer_port} exited ({status}):\n{}",
                    guard.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        guard.kill();
        bail!(
            "etcd on port {client_port} was not healthy within {READY_DEADLINE:?}:\n{}",
            guard.log()
        )
    }
}

/// The outcome of one start attempt.
enum Started {
    /// etcd answers `{"health":"true"}` and lists our peer URL.
    Ready(ChildGuard),
    /// etcd exited before it became healthy.
    Exited(anyhow::Error),
}

/// Two distinct loopback ports that were free a moment ago (both listeners
/// are held at once, so they differ).
fn free_port_pair() -> anyhow::Result<(u16, u16)> {
    let client = TcpListener::bind("127.0.0.1:0")?;
    let peer = TcpListener::bind("127.0.0.1:0")?;
    Ok((client.local_addr()?.port(), peer.local_addr()?.port()))
}

/// Whether `GET /health` (plain HTTP/1.0) answers 200 with
/// `{"health":"true"}`.
fn healthy(address: SocketAddr) -> bool {
    let request = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    http_ok_body(address, request)
        .is_some_and(|body| body.replace(' ', "").contains(r#""health":"true""#))
}

/// Whether the etcd at `address` lists a member with the peer URL `peer`
/// (`POST /v3/cluster/member/list`, the gRPC gateway of etcd 3.4).
fn is_member(address: SocketAddr, peer: &str) -> bool {
    let request = "POST /v3/cluster/member/list HTTP/1.0\r\nHost: 127.0.0.1\r\n\
                   Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    let ours = format!(r#""peerURLs":["{peer}"]"#);
    http_ok_body(address, request).is_some_and(|body| body.contains(&ours))
}

/// Sends a raw HTTP/1.0 `request` and returns the body of a 200 reply.
fn http_ok_body(address: SocketAddr, request: &str) -> Option<String> {
    let reply = http_exchange(address, request).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.split_whitespace().nth(1)?;
    (status == "200").then(|| body.to_string())
}

/// Sends `request` over a fresh connection and reads the whole reply (the
/// server closes the connection after an HTTP/1.0 reply).
fn http_exchange(address: SocketAddr, request: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&address, PROBE_TIMEOUT)?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
    stream.write_all(request.as_bytes())?;
    let mut reply = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut reply)?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}
