//! A private Mongo-wire server (SecantusDB) for integration tests that stop
//! or restart their backend, and the shared one `deploy/test.sh` starts.
//!
//! [`MongoServer::start`] runs `secantusd-py` (path in
//! `ZAQAR_TEST_SECANTUSD`; `deploy/test.sh` installs it into a cached venv)
//! on a free loopback port with its own data directory and an empty
//! `--config` file and `--sync-on-commit` (acknowledged writes survive
//! `kill -9`), waits until a ping answers (the `python` beside
//! `secantusd-py` runs pymongo), and stops it when dropped. Outage tests use
//! [`MongoServer::kill`] and [`MongoServer::restart`], which keep the port
//! and the data.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::{ChildGuard, STOP_DEADLINE, free_port};

/// How long the server may take to answer its first ping (it can take
/// several seconds to start).
const MONGO_READY_DEADLINE: Duration = Duration::from_secs(60);

/// The shared test server (`ZAQAR_TEST_MONGO_URL`). A missing URL fails the
/// test: nothing is skipped silently.
pub fn test_mongo_url() -> String {
    std::env::var("ZAQAR_TEST_MONGO_URL")
        .expect("ZAQAR_TEST_MONGO_URL must name a test MongoDB (deploy/test.sh starts one)")
}

/// A URI of the shared test server naming a fresh database, so that tests
/// never share collections.
pub fn fresh_mongo_uri(prefix: &str) -> String {
    let url = test_mongo_url();
    let (scheme, rest) = url.split_once("://").expect("a mongodb:// url");
    let hosts_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (hosts, tail) = rest.split_at(hosts_end);
    let query = tail.find('?').map(|at| &tail[at..]).unwrap_or("");
    let database = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    format!("{scheme}://{hosts}/{database}{query}")
}

fn secantusd() -> PathBuf {
    PathBuf::from(
        std::env::var_os("ZAQAR_TEST_SECANTUSD").expect(
            "ZAQAR_TEST_SECANTUSD must name secantusd-py (deploy/test.sh installs SecantusDB)",
        ),
    )
}

/// A private Mongo-wire server with its own data directory.
pub struct MongoServer {
    /// The process (declared first: stopped before the data is deleted).
    pub guard: ChildGuard,
    /// Its port.
    pub port: u16,
    /// Holds `data/` and the empty `config.toml`.
    data: TempDir,
}

impl MongoServer {
    /// Starts a server on a free port and waits until it answers.
    pub fn start() -> anyhow::Result<MongoServer> {
        let data = tempfile::Builder::new()
            .prefix("zaqar-it-mongo-")
            .tempdir()?;
        std::fs::write(data.path().join("config.toml"), "")?;
        let mut last_error = None;
        for _ in 0..5 {
            let port = free_port()?;
            match Self::start_on(port, data.path()) {
                Ok(guard) => return Ok(MongoServer { guard, port, data }),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("secantusd-py did not start")))
    }

    /// The server's URI with the database `database`.
    pub fn uri(&self, database: &str) -> String {
        format!(
            "mongodb://127.0.0.1:{}/{database}?directConnection=true",
            self.port
        )
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.guard.kill();
    }

    /// Stops the server if it runs, then starts it again on the same port
    /// and data directory.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.guard.terminate(STOP_DEADLINE);
        self.guard = Self::start_on(self.port, self.data.path())?;
        Ok(())
    }

    fn start_on(port: u16, dir: &Path) -> anyhow::Result<ChildGuard> {
        let mut command = Command::new(secantusd());
        command
            .arg("--config")
            .arg(dir.join("config.toml"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--storage-path")
            .arg(dir.join("data"))
            .args(["--log-level", "WARNING"])
            // Acknowledged writes survive `kill -9` (as with j:true).
            .arg("--sync-on-commit")
            .current_dir(dir)
            .stdout(Stdio::null());
        let mut guard = ChildGuard::spawn("mongo", command)?;
        let started = Instant::now();
        while started.elapsed() < MONGO_READY_DEADLINE {
            if ping(port)? {
                return Ok(guard);
            }
            if let Ok(Some(_)) = guard.child.try_wait() {
                bail!("secantusd-py exited:\n{}", guard.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        guard.kill();
        bail!("secantusd-py on port {port} did not answer a ping")
    }
}

/// Whether the server on `port` answers a ping (through pymongo from the
/// server's own venv).
fn ping(port: u16) -> anyhow::Result<bool> {
    let python = secantusd()
        .parent()
        .context("secantusd-py has a directory")?
        .join("python");
    let script = "import sys, pymongo\n\
                  url = 'mongodb://127.0.0.1:%s/?directConnection=true' % sys.argv[1]\n\
                  pymongo.MongoClient(url, serverSelectionTimeoutMS=500).admin.command('ping')";
    let status = Command::new(python)
        .args(["-c", script, &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    Ok(status.success())
}
