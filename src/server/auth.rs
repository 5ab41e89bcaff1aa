//! Who may read the admin API.
//!
//! Locally: a tokens file holding only SHA-256 hashes of bearer tokens. In the
//! cluster: Kubernetes TokenReview authenticates the bearer token and
//! SubjectAccessReview asks RBAC whether that user may `get`
//! `artifortresses/opssummary` in the installation's namespace.

use std::path::Path;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use artifortress_formats::tokens::{Role, TokenEntry};

/// The resource RBAC rules grant to admins of the ops summary.
pub const OPS_SUMMARY_RESOURCE: &str = "artifortresses";
pub const OPS_SUMMARY_SUBRESOURCE: &str = "opssummary";

/// The outcome of checking a request's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Authenticated and allowed.
    Allowed { actor: String },
    /// No bearer token, or one nobody recognises (401).
    Unauthenticated { reason: &'static str },
    /// Authenticated but not allowed (403).
    Forbidden { actor: String },
}

pub enum Authenticator {
    TokensFile(Vec<TokenEntry>),
    Kubernetes { client: kube::Client },
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("tokens file {path}: {reason}")]
    TokensFile { path: String, reason: String },
    #[error("asking the Kubernetes API to review the token: {0}")]
    Kubernetes(String),
}

/// Parses a tokens file (`artifortress_formats::tokens`); errors name the file and line.
pub fn parse_tokens_file(path: &Path, text: &str) -> Result<Vec<TokenEntry>, AuthError> {
    artifortress_formats::tokens::parse(text)
        .map_err(|e| AuthError::TokensFile { path: path.display().to_string(), reason: e.to_string() })
}

/// `sha256:<hex>` of a token, the form a tokens file stores.
pub fn token_hash(token: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(token.as_bytes())))
}

impl Authenticator {
    /// Decides for a bearer token (None when the header is missing or malformed).
    pub async fn decide(&self, bearer: Option<&str>, namespace: &str) -> Result<Decision, AuthError> {
        let Some(token) = bearer.filter(|t| !t.is_empty()) else {
            return Ok(Decision::Unauthenticated { reason: "missing bearer token" });
        };
        match self {
            Authenticator::TokensFile(entries) => {
                let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                // Compare against every entry, so timing reveals nothing about which one matched.
                let mut found = None;
                for entry in entries {
                    if bool::from(entry.sha256.ct_eq(&digest)) {
                        found = Some(entry);
                    }
                }
                Ok(match found {
                    None => Decision::Unauthenticated { reason: "invalid bearer token" },
                    Some(e) if e.role == Role::Admin => Decision::Allowed { actor: e.actor.clone() },
                    Some(e) => Decision::Forbidden { actor: e.actor.clone() },
                })
            }
            Authenticator::Kubernetes { client } => kubernetes_decide(client, token, namespace).await,
        }
    }
}

async fn kubernetes_decide(client: &kube::Client, token: &str, namespace: &str) -> Result<Decision, AuthError> {
    let review =
        TokenReview { spec: TokenReviewSpec { token: token.to_string(), ..Default::default() }, ..Default::default() };
    let reviewed = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| AuthError::Kubernetes(e.to_string()))?;
    let status = reviewed.status.unwrap_or_default();
    let user = status.user.unwrap_or_default();
    let username = match (status.authenticated, user.username) {
        (Some(true), Some(name)) => name,
        _ => return Ok(Decision::Unauthenticated { reason: "invalid bearer token" }),
    };
    let access = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(username.clone()),
            groups: user.groups,
            uid: user.uid,
            extra: user.extra,
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_string()),
                verb: Some("get".into()),
                group: Some(crate::api::common::GROUP.into()),
                resource: Some(OPS_SUMMARY_RESOURCE.into()),
                subresource: Some(OPS_SUMMARY_SUBRESOURCE.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let decided = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &access)
        .await
        .map_err(|e| AuthError::Kubernetes(e.to_string()))?;
    let allowed = decided.status.is_some_and(|s| s.allowed);
    Ok(if allowed { Decision::Allowed { actor: username } } else { Decision::Forbidden { actor: username } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Authenticator {
        Authenticator::TokensFile(parse_tokens_file(Path::new("tokens"), text).unwrap())
    }

    #[tokio::test]
    async fn tokens_file_decides_by_role() {
        let text = format!(
            "# admins\n{} admin ops-alice\n\n{} viewer dev-bob  # read-only\n",
            token_hash("alice-token"),
            token_hash("bob-token")
        );
        let auth = file(&text);
        let d = |t: Option<&'static str>| {
            let auth = &auth;
            async move { auth.decide(t, "ns").await.unwrap() }
        };
        assert_eq!(d(Some("alice-token")).await, Decision::Allowed { actor: "ops-alice".into() });
        assert_eq!(d(Some("bob-token")).await, Decision::Forbidden { actor: "dev-bob".into() });
        assert_eq!(d(Some("guess")).await, Decision::Unauthenticated { reason: "invalid bearer token" });
        assert_eq!(d(None).await, Decision::Unauthenticated { reason: "missing bearer token" });
    }

    #[test]
    fn a_malformed_line_is_reported_with_the_file_and_line() {
        let err =
            parse_tokens_file(Path::new("/etc/af/tokens"), "# ok\nsha256:abcd admin x\n").err().unwrap().to_string();
        assert!(err.starts_with("tokens file /etc/af/tokens: line 2:") && err.contains("64 hex digits"), "{err}");
    }
}
