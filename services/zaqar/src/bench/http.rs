//! A lean HTTP/1.1 client for the load: one keep-alive connection per
//! worker, reopened after any failure.
//!
//! The load generator shares the machine with the service it measures, so
//! every microsecond it spends per request is taken from the server. A
//! worker sends one request at a time, so it needs no pool: it owns its
//! connection, and requests carry prebuilt header values.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long one request may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where requests go and the headers every request carries.
#[derive(Clone)]
pub struct Endpoint {
    /// `host:port` to connect to.
    authority: String,
    /// The path prefix of the base URL (no trailing `/`).
    base_path: String,
    host: HeaderValue,
    project: HeaderValue,
}

impl Endpoint {
    /// Parses an `http://HOST:PORT[/PATH]` base URL.
    pub fn parse(url: &str, project: &str) -> anyhow::Result<Endpoint> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|error| anyhow::anyhow!("invalid --url {url:?}: {error}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            _ => anyhow::bail!(
                "--url must be an http:// URL (the load generator speaks plain HTTP/1.1)"
            ),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow::anyhow!("--url {url:?} has no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        Ok(Endpoint {
            authority: format!("{}:{port}", authority.host()),
            base_path: uri.path().trim_end_matches('/').to_string(),
            host: HeaderValue::from_str(authority.as_str())?,
            project: HeaderValue::from_str(project)?,
        })
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.base_path)
    }
}

/// What went wrong with one request, as the report counts it.
pub fn failure(error: &anyhow::Error) -> String {
    if error.is::<tokio::time::error::Elapsed>() {
        "timeout".into()
    } else {
        "transport".into()
    }
}

/// One worker's connection and identity.
pub struct Connection {
    endpoint: Endpoint,
    client_id: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// An answered request.
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The whole body.
    pub body: Bytes,
}

impl Connection {
    /// A connection (opened on first use) sending `client_id`.
    pub fn new(endpoint: &Endpoint, client_id: &str) -> anyhow::Result<Connection> {
        Ok(Connection {
            endpoint: endpoint.clone(),
            client_id: HeaderValue::from_str(client_id)?,
            sender: None,
        })
    }

    async fn open(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(&self.endpoint.authority).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// Sends one request to `path` (below the base URL; a JSON body when
    /// `body` is given) and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<Answer> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(method, path, body)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => {
                self.sender = None;
                Err(error)
            }
            Err(elapsed) => {
                self.sender = None;
                Err(elapsed.into())
            }
        }
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<Answer> {
        let mut sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.open().await?,
        };
        sender.ready().await?;
        let uri = if self.endpoint.base_path.is_empty() {
            path.to_string()
        } else {
            format!("{}{path}", self.endpoint.base_path)
        };
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(HOST, self.endpoint.host.clone())
            .header(HeaderName::from_static("client-id"), self.client_id.clone())
            .header(
                HeaderName::from_static("x-project-id"),
                self.endpoint.project.clone(),
            );
        if body.is_some() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let request = request.body(Full::new(body.unwrap_or_default()))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        self.sender = Some(sender);
        Ok(Answer { status, body })
    }
}
