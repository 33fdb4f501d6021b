//! The integration-test harness: real processes on loopback.
//!
//! - [`ChildGuard`]: a child process stopped with SIGTERM (then SIGKILL after
//!   a deadline) when dropped, with its logs in a temporary directory.
//! - [`StorageNode`]: a `zaqar storage` process on a free port.
//! - [`RedisServer`]: a private `redis-server` on a free port, for tests that
//!   stop or restart their backend.
//! - [`ApiNode`]: a `zaqar api` (or `zaqar standalone`) process.
//! - [`Cluster`]: a storage node and an API node on the shared test Redis.
//! - [`Http`]: an HTTP client that sends a project and Client-ID by default.
//! - [`webhook::Receiver`]: a real webhook receiver for notification tests.
//! - [`test_redis_url`]: the shared test Redis that `deploy/test.sh` starts.
//! - [`MongoServer`], [`test_mongo_url`], [`fresh_mongo_uri`]: a private
//!   Mongo-wire server, and the shared one `deploy/test.sh` starts.
//!
//! Children bind port 0 and report their address; readiness is polled with a
//! deadline, never slept for.

// Test harness: a failed step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod etcd;
mod mongo;
pub mod webhook;

pub use etcd::EtcdServer;
pub use mongo::{MongoServer, fresh_mongo_uri, test_mongo_url};

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

/// A plain HTTP client. The workspace builds reqwest with rustls and no
/// built-in crypto provider (the storage node installs ring), so install it
/// here too.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

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
        Self::start_on(backend, "127.0.0.1:0")
    }

    /// Starts a node in front of `backend` on `address`.
    pub fn start_on(backend: &str, address: &str) -> anyhow::Result<StorageNode> {
        Self::start_with(backend, address, &[])
    }

    /// Starts a node that registers itself in the catalog at `etcd`.
    pub fn registered(backend: &str, etcd: &str) -> anyhow::Result<StorageNode> {
        Self::start_with(backend, "127.0.0.1:0", &["--etcd", etcd])
    }

    /// Starts a node in front of `backend` on `address` with extra
    /// environment variables (`ZAQAR_STORAGE__*` settings and the like).
    pub fn start_env(
        backend: &str,
        address: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<StorageNode> {
        Self::start_full(backend, address, &[], env)
    }

    fn start_with(backend: &str, address: &str, extra: &[&str]) -> anyhow::Result<StorageNode> {
        Self::start_full(backend, address, extra, &[])
    }

    fn start_full(
        backend: &str,
        address: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<StorageNode> {
        let mut command = Command::new(zaqar_bin());
        command
            .args(["storage", "--listen", address, "--backend", backend])
            .args(extra)
            .env("ZAQAR_STORAGE__REGISTRATION_TTL", "3s")
            .env("RUST_LOG", "info")
            .env("ZAQAR_STORAGE__SHUTDOWN_GRACE", "500ms")
            .stdout(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut guard = ChildGuard::spawn("storage", command)?;
        let address = wait_for_address(&mut guard)?;
        Ok(StorageNode { guard, address })
    }

    /// The node's gRPC URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

/// A `zaqar api` or `zaqar standalone` process serving HTTP.
pub struct ApiNode {
    /// The process.
    pub guard: ChildGuard,
    /// `host:port` it listens on.
    pub address: String,
    /// A standalone's private data directory, when the test did not give one.
    _data: Option<TempDir>,
}

impl ApiNode {
    /// Starts `zaqar api --storage URL` with extra `ZAQAR_API__*` settings.
    pub fn start(storage_url: &str, env: &[(&str, &str)]) -> anyhow::Result<ApiNode> {
        Self::start_role("api", &["--storage", storage_url], env)
    }

    /// Starts a pooled `zaqar api --etcd URL` in admin mode.
    pub fn pooled(etcd: &str) -> anyhow::Result<ApiNode> {
        Self::start_role(
            "api",
            &["--etcd", etcd],
            &[("ZAQAR_API__ADMIN_MODE", "true")],
        )
    }

    /// Starts `zaqar standalone` on its embedded store in `dir`.
    pub fn standalone_in(dir: &Path, env: &[(&str, &str)]) -> anyhow::Result<ApiNode> {
        let dir = dir.to_string_lossy().into_owned();
        Self::start_role("standalone", &["--data-dir", &dir], env)
    }

    /// Starts `zaqar standalone --backend URI` (its catalog in a private
    /// temporary directory).
    pub fn standalone(backend: &str, env: &[(&str, &str)]) -> anyhow::Result<ApiNode> {
        let data = tempfile::Builder::new()
            .prefix("zaqar-it-standalone-")
            .tempdir()?;
        let dir = data.path().to_string_lossy().into_owned();
        let mut node = Self::start_role(
            "standalone",
            &["--backend", backend, "--data-dir", &dir],
            env,
        )?;
        node._data = Some(data);
        Ok(node)
    }

    fn start_role(role: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<ApiNode> {
        let mut command = Command::new(zaqar_bin());
        command
            .args([role, "--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .env(
                if role == "standalone" {
                    "ZAQAR_STANDALONE__API__SHUTDOWN_GRACE"
                } else {
                    "ZAQAR_API__SHUTDOWN_GRACE"
                },
                "500ms",
            )
            .stdout(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut guard = ChildGuard::spawn(role, command)?;
        let address = wait_for_address(&mut guard)?;
        Ok(ApiNode {
            guard,
            address,
            _data: None,
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:1234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

/// A storage node and an API node in front of the shared test Redis.
pub struct Cluster {
    /// The API node (declared first: stopped before its storage node).
    pub api: ApiNode,
    /// The storage node.
    pub storage: StorageNode,
}

impl Cluster {
    /// Starts both processes with default settings.
    pub fn start() -> anyhow::Result<Cluster> {
        Self::with_env(&[])
    }

    /// Starts both processes with extra `ZAQAR_API__*` settings.
    pub fn with_env(env: &[(&str, &str)]) -> anyhow::Result<Cluster> {
        let storage = StorageNode::start(&test_redis_url())?;
        let api = ApiNode::start(&storage.url(), env)?;
        Ok(Cluster { api, storage })
    }

    /// A client in a fresh project.
    pub fn client(&self) -> Http {
        Http::new(&self.api.url())
    }
}

/// A reply: status, headers and the body (parsed JSON, or `Null`).
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The raw body.
    pub text: String,
    /// The body as JSON (`Null` when empty or not JSON).
    pub json: serde_json::Value,
}

impl Reply {
    /// The message ids of a 201 post reply's `resources`.
    pub fn posted_ids(&self) -> Vec<String> {
        self.json["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .map(|href| {
                href.as_str()
                    .and_then(|href| href.rsplit('/').next())
                    .expect("href")
                    .to_string()
            })
            .collect()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Asserts the status, naming the contract row on failure.
    pub fn expect(&self, row: &str, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "{row}: unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Asserts the Zaqar error title (and a description fragment).
    pub fn expect_error(&self, row: &str, status: u16, title: &str, description: &str) -> &Self {
        self.expect(row, status);
        assert_eq!(self.json["title"], title, "{row}: {}", self.text);
        let found = self.json["description"].as_str().unwrap_or_default();
        assert!(
            found.contains(description),
            "{row}: description {found:?} lacks {description:?}"
        );
        self
    }
}

/// An HTTP client that sends `X-Project-ID` and `Client-ID` by default.
#[derive(Clone)]
pub struct Http {
    base: String,
    client: reqwest::Client,
    /// The project sent in `X-Project-ID`.
    pub project: String,
    /// The Client-ID sent.
    pub client_id: String,
    /// The `X-Roles` sent, if any.
    pub roles: Option<String>,
}

impl Http {
    /// A client for `base` in a fresh project with a fresh Client-ID.
    pub fn new(base: &str) -> Http {
        Http {
            base: base.trim_end_matches('/').to_string(),
            client: http_client(),
            project: format!("it-{}", uuid::Uuid::new_v4().simple()),
            client_id: uuid::Uuid::new_v4().to_string(),
            roles: None,
        }
    }

    /// The same client with the `admin` role.
    pub fn as_admin(&self) -> Http {
        Http {
            roles: Some("admin".into()),
            ..self.clone()
        }
    }

    /// The same project with another Client-ID.
    pub fn other_client(&self) -> Http {
        Http {
            client_id: uuid::Uuid::new_v4().to_string(),
            ..self.clone()
        }
    }

    /// The same Client-ID in the given project.
    pub fn with_project(&self, project: &str) -> Http {
        Http {
            project: project.to_string(),
            ..self.clone()
        }
    }

    /// The same project with the given Client-ID.
    pub fn with_client_id(&self, client_id: &str) -> Http {
        Http {
            client_id: client_id.to_string(),
            ..self.clone()
        }
    }

    /// The same Client-ID in another project.
    pub fn other_project(&self) -> Http {
        Http {
            project: format!("it-{}", uuid::Uuid::new_v4().simple()),
            ..self.clone()
        }
    }

    /// A request with the default headers.
    pub fn request(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .bare(method, path)
            .header("Client-ID", &self.client_id)
            .header("X-Project-ID", &self.project);
        match &self.roles {
            Some(roles) => request.header("X-Roles", roles),
            None => request,
        }
    }

    /// A request without any default header.
    pub fn bare(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// Sends a request and reads the whole reply.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request failed");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    /// `METHOD path` without a body.
    pub async fn call(&self, method: &str, path: &str) -> Reply {
        self.send(self.request(method, path)).await
    }

    /// `METHOD path` with a raw body and `Content-Type: application/json`.
    pub async fn call_with(&self, method: &str, path: &str, body: &str) -> Reply {
        self.send(
            self.request(method, path)
                .header("Content-Type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    /// `METHOD path` with a JSON body.
    pub async fn json(&self, method: &str, path: &str, body: serde_json::Value) -> Reply {
        self.call_with(method, path, &body.to_string()).await
    }

    /// Posts `n` messages with bodies `{"n": i}`; returns their ids.
    pub async fn post_messages(&self, queue: &str, n: usize) -> Vec<String> {
        let messages: Vec<serde_json::Value> = (0..n)
            .map(|i| serde_json::json!({"body": {"n": i}, "ttl": 300}))
            .collect();
        let reply = self
            .json(
                "POST",
                &format!("/v2/queues/{queue}/messages"),
                serde_json::json!({"messages": messages}),
            )
            .await;
        reply.expect("post messages", 201);
        reply.posted_ids()
    }

    /// Claims up to `limit` messages; returns (claim id, message ids).
    pub async fn claim(&self, queue: &str, limit: u32) -> (String, Vec<String>) {
        let reply = self
            .json(
                "POST",
                &format!("/v2/queues/{queue}/claims?limit={limit}"),
                serde_json::json!({"ttl": 300, "grace": 60}),
            )
            .await;
        reply.expect("claim", 201);
        let location = reply.header("location").expect("location").to_string();
        let claim = location.rsplit('/').next().expect("claim id").to_string();
        let ids = reply.json["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|message| message["id"].as_str().expect("id").to_string())
            .collect();
        (claim, ids)
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
