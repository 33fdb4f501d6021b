//! Every key the catalog writes, under one configurable root (default
//! `/zaqar`). Dynamic segments are percent-escaped (`%` and `/`), so any
//! project or pool name maps to exactly one key.
//!
//! | key | value (JSON) |
//! |---|---|
//! | `{root}/pools/{pool}` | [`Pool`](crate::model::Pool) |
//! | `{root}/flavors/{project}/{flavor}` | [`Flavor`](crate::model::Flavor) |
//! | `{root}/queues/{project}/{q\|t}/{name}` | [`Placement`](crate::model::Placement) |
//! | `{root}/nodes/{node id}` | [`Node`](crate::model::Node), under a lease |

/// Builds and parses catalog keys under a root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    root: String,
}

/// Escapes a key segment.
pub fn escape(segment: &str) -> String {
    let mut escaped = String::with_capacity(segment.len());
    for ch in segment.chars() {
        match ch {
            '%' => escaped.push_str("%25"),
            '/' => escaped.push_str("%2F"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Reverses [`escape`].
pub fn unescape(segment: &str) -> String {
    segment.replace("%2F", "/").replace("%25", "%")
}

impl Keys {
    /// Keys under `root` (a trailing `/` is ignored).
    pub fn new(root: &str) -> Keys {
        Keys {
            root: root.trim_end_matches('/').to_string(),
        }
    }

    /// The prefix of every pool key.
    pub fn pools(&self) -> String {
        format!("{}/pools/", self.root)
    }

    /// The key of one pool.
    pub fn pool(&self, name: &str) -> String {
        format!("{}{}", self.pools(), escape(name))
    }

    /// The prefix of every flavor key.
    pub fn all_flavors(&self) -> String {
        format!("{}/flavors/", self.root)
    }

    /// The prefix of a project's flavors.
    pub fn flavors(&self, project: &str) -> String {
        format!("{}{}/", self.all_flavors(), escape(project))
    }

    /// The key of one flavor.
    pub fn flavor(&self, project: &str, name: &str) -> String {
        format!("{}{}", self.flavors(project), escape(name))
    }

    /// The prefix of every placement.
    pub fn all_queues(&self) -> String {
        format!("{}/queues/", self.root)
    }

    /// The prefix of a project's placements in one namespace (`q` or `t`).
    pub fn queues(&self, project: &str, namespace: &str) -> String {
        format!("{}{}/{namespace}/", self.all_queues(), escape(project))
    }

    /// The key of one placement.
    pub fn queue(&self, project: &str, namespace: &str, name: &str) -> String {
        format!("{}{}", self.queues(project, namespace), escape(name))
    }

    /// The prefix of every node registration.
    pub fn nodes(&self) -> String {
        format!("{}/nodes/", self.root)
    }

    /// The key of one node registration.
    pub fn node(&self, id: &str) -> String {
        format!("{}{}", self.nodes(), escape(id))
    }

    /// The last segment of a key, unescaped.
    pub fn last_segment(key: &str) -> String {
        unescape(key.rsplit('/').next().unwrap_or_default())
    }

    /// Parses a placement key into (project, namespace, name).
    pub fn parse_queue(&self, key: &str) -> Option<(String, String, String)> {
        let rest = key.strip_prefix(&self.all_queues())?;
        let mut parts = rest.splitn(3, '/');
        let project = unescape(parts.next()?);
        let namespace = parts.next()?.to_string();
        let name = unescape(parts.next()?);
        Some((project, namespace, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_escape_slashes_and_parse_back() {
        let keys = Keys::new("/zaqar/");
        assert_eq!(keys.pool("a/b"), "/zaqar/pools/a%2Fb");
        assert_eq!(Keys::last_segment(&keys.pool("a/b%")), "a/b%");
        let key = keys.queue("p/1", "q", "orders");
        assert_eq!(key, "/zaqar/queues/p%2F1/q/orders");
        assert_eq!(
            keys.parse_queue(&key),
            Some(("p/1".into(), "q".into(), "orders".into()))
        );
        assert!(keys.flavor("p", "gold").starts_with(&keys.flavors("p")));
        assert_ne!(
            keys.flavors("p"),
            keys.flavors("p2")[..keys.flavors("p").len()]
        );
    }
}
