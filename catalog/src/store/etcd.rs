//! The etcd catalog store (etcd v3 API, 3.4 and later).
//!
//! - `create_if_absent` is one transaction comparing the key's version to 0.
//! - `put_leased` grants a lease, writes the key with it and keeps it alive
//!   from a background task, re-creating lease and key if the lease was lost
//!   (e.g. after an etcd outage longer than the TTL).
//! - `watch` reads the prefix, then watches from the next revision; when the
//!   watch fails or is compacted away, the event channel closes and the
//!   watcher takes a new snapshot.
//! - Calls fail with `Unavailable` while etcd is unreachable; callers retry.

use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    WatchOptions,
};
use tokio::sync::mpsc;

use crate::error::{CatalogError, Result};
use crate::store::{CatalogStore, Entry, Lease, Watch, WatchEvent};

/// How long one etcd call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Watch events buffered before the watcher is considered lost.
const WATCH_BUFFER: usize = 4096;

/// A [`CatalogStore`] on an etcd cluster.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
}

impl EtcdStore {
    /// Connects to the given endpoints (`http://HOST:PORT`). The connection
    /// is made lazily, so this succeeds while etcd is down.
    pub async fn connect(endpoints: &[String]) -> Result<EtcdStore> {
        if endpoints.is_empty() {
            return Err(CatalogError::Invalid("no etcd endpoint given".into()));
        }
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(CALL_TIMEOUT)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        let client = Client::connect(endpoints, Some(options)).await?;
        Ok(EtcdStore { client })
    }

    fn client(&self) -> Client {
        self.client.clone()
    }
}

/// The smallest key sorting after every key with this prefix.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn entry(key: &[u8], value: &[u8]) -> Result<Entry> {
    Ok(Entry {
        key: String::from_utf8(key.to_vec()).map_err(|_| CatalogError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "key is not UTF-8".into(),
        })?,
        value: value.to_vec(),
    })
}

#[async_trait]
impl CatalogStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let reply = self.client().get(key, None).await?;
        Ok(reply.kvs().first().map(|kv| kv.value().to_vec()))
    }

    async fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<Entry>> {
        // Keys strictly after `after`: start at `after` + NUL.
        let start = match after {
            Some(after) if after >= prefix => {
                let mut start = after.as_bytes().to_vec();
                start.push(0);
                start
            }
            _ => prefix.as_bytes().to_vec(),
        };
        let options = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        let reply = self.client().get(start, Some(options)).await?;
        reply
            .kvs()
            .iter()
            .map(|kv| entry(kv.key(), kv.value()))
            .collect()
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let options = GetOptions::new().with_prefix().with_count_only();
        let reply = self.client().get(prefix, Some(options)).await?;
        Ok(u64::try_from(reply.count()).unwrap_or_default())
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.client().put(key, value, None).await?;
        Ok(())
    }

    async fn create_if_absent(&self, key: &str, value: Vec<u8>) -> Result<(Vec<u8>, bool)> {
        let txn = Txn::new()
            .when([Compare::version(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.clone(), None)])
            .or_else([TxnOp::get(key, None)]);
        let reply = self.client().txn(txn).await?;
        if reply.succeeded() {
            return Ok((value, true));
        }
        for response in reply.op_responses() {
            if let etcd_client::TxnOpResponse::Get(get) = response
                && let Some(kv) = get.kvs().first()
            {
                return Ok((kv.value().to_vec(), false));
            }
        }
        // Deleted between the compare and the read: treat as a lost race.
        Err(CatalogError::Unavailable(format!(
            "{key} changed concurrently; retry"
        )))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.client().delete(key, None).await?;
        Ok(())
    }

    async fn put_leased(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<Lease> {
        let seconds = i64::try_from(ttl.as_secs().max(2)).unwrap_or(10);
        let mut client = self.client();
        let lease = client.lease_grant(seconds, None).await?.id();
        client
            .put(
                key,
                value.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )
            .await?;
        let cancel = tokio_util::sync::CancellationToken::new();
        tokio::spawn(keep_alive(
            client,
            key.to_string(),
            value,
            seconds,
            lease,
            cancel.clone(),
        ));
        Ok(Lease::new(cancel))
    }

    async fn watch(&self, prefix: &str, with_snapshot: bool) -> Result<Watch> {
        let mut client = self.client();
        let mut read = GetOptions::new().with_prefix();
        if !with_snapshot {
            read = read.with_count_only();
        }
        let reply = client.get(prefix, Some(read)).await?;
        let revision = reply.header().map(|header| header.revision()).unwrap_or(0);
        let snapshot = reply
            .kvs()
            .iter()
            .map(|kv| entry(kv.key(), kv.value()))
            .collect::<Result<Vec<_>>>()?;
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let mut stream = client.watch(prefix, Some(options)).await?;
        let (sender, events) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(async move {
            loop {
                let message = match stream.message().await {
                    Ok(Some(message)) => message,
                    Ok(None) | Err(_) => return,
                };
                if message.canceled() || message.compact_revision() > 0 {
                    return;
                }
                for event in message.events() {
                    let Some(kv) = event.kv() else { continue };
                    let change = match event.event_type() {
                        EventType::Put => match entry(kv.key(), kv.value()) {
                            Ok(entry) => WatchEvent::Put(entry),
                            Err(_) => continue,
                        },
                        EventType::Delete => {
                            WatchEvent::Delete(String::from_utf8_lossy(kv.key()).into_owned())
                        }
                    };
                    if sender.send(change).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Watch { snapshot, events })
    }
}

/// Keeps a lease alive until cancelled, then revokes it. If the lease is
/// lost, grants a new one and writes the key again.
async fn keep_alive(
    mut client: Client,
    key: String,
    value: Vec<u8>,
    ttl: i64,
    mut lease: i64,
    cancel: tokio_util::sync::CancellationToken,
) {
    let period = Duration::from_secs(u64::try_from(ttl / 3).unwrap_or(1).max(1));
    loop {
        tokio::select! {
            () = cancel.cancelled() => {
                let _ = client.lease_revoke(lease).await;
                return;
            }
            () = tokio::time::sleep(period) => {}
        }
        let alive = match client.lease_keep_alive(lease).await {
            Ok((mut keeper, mut replies)) => match keeper.keep_alive().await {
                Ok(()) => matches!(replies.message().await, Ok(Some(reply)) if reply.ttl() > 0),
                Err(_) => false,
            },
            Err(_) => false,
        };
        if alive {
            continue;
        }
        // The lease is gone (or etcd is down): try to register again.
        let renewed = async {
            let granted = client.lease_grant(ttl, None).await?.id();
            client
                .put(
                    key.as_str(),
                    value.clone(),
                    Some(PutOptions::new().with_lease(granted)),
                )
                .await?;
            Ok::<i64, etcd_client::Error>(granted)
        }
        .await;
        match renewed {
            Ok(granted) => {
                tracing::info!(%key, "re-registered after losing the lease");
                lease = granted;
            }
            Err(error) => tracing::warn!(%key, %error, "cannot renew the registration lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_bound_the_range() {
        assert_eq!(prefix_end("/zaqar/pools/"), b"/zaqar/pools0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }
}

#[cfg(test)]
mod conformance {
    use std::sync::Arc;

    use super::EtcdStore;
    use crate::conformance::Fixture;

    /// The etcd under test; `deploy/test.sh` starts one and sets this.
    async fn etcd_fixture() -> Fixture {
        let url = std::env::var("ZAQAR_TEST_ETCD_URL")
            .expect("ZAQAR_TEST_ETCD_URL must name a test etcd (deploy/test.sh starts one)");
        let store = EtcdStore::connect(&[url])
            .await
            .expect("connect to the test etcd");
        Fixture {
            store: Arc::new(store),
            guard: None,
        }
    }

    crate::catalog_conformance_suite!(etcd_fixture);
}
