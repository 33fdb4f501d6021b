//! Who is calling: the seam between authentication and the handlers.
//!
//! Zaqar runs the token check first of all (contract §1.2 step 1, 401 on
//! failure), then reads the project header at step 7. An [`Authenticator`]
//! does the first part as middleware and leaves what it proved in the
//! request; [`RequestContext`](crate::context::RequestContext) then reads
//! the project and roles. [`Unauthenticated`] (Zaqar's default,
//! `auth_strategy` empty) proves nothing: the project comes from the
//! project header and the roles from `X-Roles`, as Zaqar trusts them in
//! that mode. A Keystone authenticator plugs in here without touching the
//! handlers.

use async_trait::async_trait;
use axum::http::HeaderMap;

use crate::error::ApiResult;

/// What authentication established about the caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The project proven by a token; `None` means "use the project header".
    pub project: Option<String>,
    /// The caller's roles.
    pub roles: Vec<String>,
}

impl Identity {
    /// Whether the caller has the `admin` role (compared case-insensitively).
    pub fn is_admin(&self) -> bool {
        self.roles
            .iter()
            .any(|role| role.eq_ignore_ascii_case("admin"))
    }
}

/// Authenticates requests (contract §1.4).
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// Checks the request's credentials; an error is answered as is (401).
    async fn authenticate(&self, headers: &HeaderMap) -> ApiResult<Identity>;
}

/// No token checks: project from the project header, roles from `X-Roles`
/// (or the configured default roles when a request sends none).
#[derive(Clone, Debug, Default)]
pub struct Unauthenticated {
    /// Roles of requests without `X-Roles`.
    pub default_roles: Vec<String>,
}

#[async_trait]
impl Authenticator for Unauthenticated {
    async fn authenticate(&self, headers: &HeaderMap) -> ApiResult<Identity> {
        let sent: Vec<&str> = ["x-roles", "x-role"]
            .iter()
            .filter_map(|name| headers.get(*name))
            .filter_map(|value| value.to_str().ok())
            .collect();
        let roles = if sent.is_empty() {
            self.default_roles.clone()
        } else {
            sent.iter()
                .flat_map(|roles| roles.split(','))
                .map(|role| role.trim().to_string())
                .filter(|role| !role.is_empty())
                .collect()
        };
        Ok(Identity {
            project: None,
            roles,
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[tokio::test]
    async fn roles_come_from_x_roles_without_authentication() {
        let mut headers = HeaderMap::new();
        let plain = Unauthenticated::default();
        assert!(!plain.authenticate(&headers).await.unwrap().is_admin());
        let trusting = Unauthenticated {
            default_roles: vec!["admin".into()],
        };
        assert!(trusting.authenticate(&headers).await.unwrap().is_admin());
        headers.insert("x-roles", HeaderValue::from_static("member, Admin"));
        let identity = plain.authenticate(&headers).await.unwrap();
        assert!(identity.is_admin());
        assert_eq!(identity.project, None);
        headers.insert("x-roles", HeaderValue::from_static("member"));
        assert!(
            !trusting.authenticate(&headers).await.unwrap().is_admin(),
            "sent roles win"
        );
    }
}
