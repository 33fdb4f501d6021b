//! A real HTTP webhook receiver on loopback for notification tests: it
//! records every request, answers from a script per path (status codes, or
//! hanging without an answer), and notices when a caller gives up on a hung
//! request.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use tokio::sync::Notify;

/// How the receiver answers one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Answer with this status.
    Status(u16),
    /// Never answer.
    Hang,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// The request path.
    pub path: String,
    /// Headers, names in lower case.
    pub headers: HeaderMap,
    /// The body text.
    pub body: String,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.body))
    }
}

#[derive(Default)]
struct Log {
    scripts: HashMap<String, VecDeque<Answer>>,
    defaults: HashMap<String, Answer>,
    received: Vec<Received>,
    abandoned: usize,
}

#[derive(Clone, Default)]
struct Shared {
    log: Arc<Mutex<Log>>,
    changed: Arc<Notify>,
}

/// Counts a hung request as abandoned when its handler is dropped (the
/// caller closed the connection).
struct Abandon(Shared);

impl Drop for Abandon {
    fn drop(&mut self) {
        if let Ok(mut log) = self.0.log.lock() {
            log.abandoned += 1;
        }
        self.0.changed.notify_waiters();
    }
}

async fn receive(
    State(shared): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let answer = {
        let mut log = shared.log.lock().unwrap();
        let path = uri.path().to_string();
        let default = log
            .defaults
            .get(&path)
            .copied()
            .unwrap_or(Answer::Status(200));
        let answer = log
            .scripts
            .get_mut(&path)
            .and_then(VecDeque::pop_front)
            .unwrap_or(default);
        log.received.push(Received {
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        answer
    };
    shared.changed.notify_waiters();
    match answer {
        Answer::Status(code) => StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        Answer::Hang => {
            let _abandon = Abandon(shared.clone());
            std::future::pending::<()>().await;
            StatusCode::OK
        }
    }
}

/// The receiver; stops when dropped.
pub struct Receiver {
    address: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver that answers 200 to everything.
    pub async fn start() -> Receiver {
        let shared = Shared::default();
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            address,
            shared,
            task,
        }
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Answers the next requests on `path` with `answers`, in order, then
    /// with the path's default (200 unless set).
    pub fn script(&self, path: &str, answers: &[Answer]) {
        self.shared
            .log
            .lock()
            .unwrap()
            .scripts
            .insert(path.to_string(), answers.iter().copied().collect());
    }

    /// Sets the answer on `path` once its script is used up.
    pub fn answer_by_default(&self, path: &str, answer: Answer) {
        self.shared
            .log
            .lock()
            .unwrap()
            .defaults
            .insert(path.to_string(), answer);
    }

    /// Every request received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.log.lock().unwrap().received.clone()
    }

    /// Requests received on `path`.
    pub fn received_on(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|request| request.path == path)
            .collect()
    }

    /// How many hung requests their callers gave up on.
    pub fn abandoned(&self) -> usize {
        self.shared.log.lock().unwrap().abandoned
    }

    /// Waits until `done` holds for the receiver's log, or panics after
    /// `deadline` saying `what` was awaited.
    pub async fn wait_until(
        &self,
        what: &str,
        deadline: Duration,
        done: impl Fn(&Receiver) -> bool,
    ) {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(self) {
                return;
            }
            if tokio::time::timeout_at(end, changed).await.is_err() && !done(self) {
                panic!(
                    "timed out waiting for {what}; received {} request(s): {:#?}",
                    self.received().len(),
                    self.received()
                );
            }
        }
    }

    /// Waits for at least `n` requests on `path` and returns them.
    pub async fn wait_for(&self, path: &str, n: usize, deadline: Duration) -> Vec<Received> {
        self.wait_until(&format!("{n} request(s) on {path}"), deadline, |receiver| {
            receiver.received_on(path).len() >= n
        })
        .await;
        self.received_on(path)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
