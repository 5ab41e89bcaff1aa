//! Who may read the admin API.
//!
//! Locally: a tokens file holding only SHA-256 hashes of bearer tokens. In the
//! cluster: Kubernetes TokenReview authenticates the bearer token and
//! SubjectAccessReview asks RBAC whether that user may `get`
//! `artifortresses/opssummary` in the installation's namespace.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use artifortress_formats::tokens::{Role, TokenEntry};

/// The resource RBAC rules grant to admins of the ops summary.
pub const OPS_SUMMARY_RESOURCE: &str = "artifortresses";
pub const OPS_SUMMARY_SUBRESOURCE: &str = "opssummary";

/// Who presented a recognised bearer token.
#[derive(Clone, Debug, PartialEq)]
pub enum Identity {
    /// A tokens-file entry.
    Token { actor: String, role: Role },
    /// A Kubernetes user (TokenReview); RBAC decides per namespace.
    Kubernetes(UserInfo),
}

impl Identity {
    /// The name the audit log records.
    pub fn actor(&self) -> &str {
        match self {
            Identity::Token { actor, .. } => actor,
            Identity::Kubernetes(user) => user.username.as_deref().unwrap_or_default(),
        }
    }
}

pub enum Authenticator {
    TokensFile(Vec<TokenEntry>),
    Kubernetes { client: kube::Client, rejected: RejectedTokens },
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
    pub fn kubernetes(client: kube::Client) -> Self {
        Authenticator::Kubernetes { client, rejected: RejectedTokens::default() }
    }

    /// Who the bearer token (None when the header is missing or malformed)
    /// belongs to, or why nobody: `Ok(Err(reason))` is a 401.
    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<Result<Identity, &'static str>, AuthError> {
        let Some(token) = bearer.filter(|t| !t.is_empty()) else {
            return Ok(Err("missing bearer token"));
        };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        match self {
            Authenticator::TokensFile(entries) => {
                // Compare against every entry, so timing reveals nothing about which one matched.
                let mut found = None;
                for entry in entries {
                    if bool::from(entry.sha256.ct_eq(&digest)) {
                        found = Some(entry);
                    }
                }
                Ok(found
                    .map(|e| Identity::Token { actor: e.actor.clone(), role: e.role })
                    .ok_or("invalid bearer token"))
            }
            Authenticator::Kubernetes { client, rejected } => {
                if rejected.contains(&digest) {
                    return Ok(Err("invalid bearer token"));
                }
                let user = token_review(client, token).await?;
                if user.is_none() {
                    rejected.insert(digest);
                }
                Ok(user.map(Identity::Kubernetes).ok_or("invalid bearer token"))
            }
        }
    }

    /// Whether `who` may read the ops summary of an installation in `namespace`.
    pub async fn authorize(&self, who: &Identity, namespace: &str) -> Result<bool, AuthError> {
        match (self, who) {
            (_, Identity::Token { role, .. }) => Ok(*role == Role::Admin),
            (Authenticator::Kubernetes { client, .. }, Identity::Kubernetes(user)) => {
                access_review(client, user, namespace).await
            }
            (Authenticator::TokensFile(_), Identity::Kubernetes(_)) => Ok(false),
        }
    }
}

/// Tokens the API server said are invalid, for a while: a flood of one bad
/// token costs one TokenReview, not one per request. Only SHA-256 digests are kept.
#[derive(Default)]
pub struct RejectedTokens(std::sync::Mutex<HashMap<[u8; 32], Instant>>);

const REJECTED_FOR: Duration = Duration::from_secs(30);
const REJECTED_MAX: usize = 4096;

impl RejectedTokens {
    fn contains(&self, digest: &[u8; 32]) -> bool {
        self.0.lock().expect("not poisoned").get(digest).is_some_and(|at| at.elapsed() < REJECTED_FOR)
    }

    fn insert(&self, digest: [u8; 32]) {
        let mut map = self.0.lock().expect("not poisoned");
        if map.len() >= REJECTED_MAX {
            map.retain(|_, at| at.elapsed() < REJECTED_FOR);
            if map.len() >= REJECTED_MAX {
                map.clear();
            }
        }
        map.insert(digest, Instant::now());
    }
}

/// The user a token belongs to; None when the API server does not recognise it.
async fn token_review(client: &kube::Client, token: &str) -> Result<Option<UserInfo>, AuthError> {
    let review =
        TokenReview { spec: TokenReviewSpec { token: token.to_string(), ..Default::default() }, ..Default::default() };
    let reviewed = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| AuthError::Kubernetes(e.to_string()))?;
    let status = reviewed.status.unwrap_or_default();
    Ok(status.user.filter(|u| status.authenticated == Some(true) && u.username.is_some()))
}

async fn access_review(client: &kube::Client, user: &UserInfo, namespace: &str) -> Result<bool, AuthError> {
    let access = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username.clone(),
            groups: user.groups.clone(),
            uid: user.uid.clone(),
            extra: user.extra.clone(),
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
    Ok(decided.status.is_some_and(|s| s.allowed))
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
            async move {
                match auth.authenticate(t).await.unwrap() {
                    Ok(who) => Ok((who.actor().to_string(), auth.authorize(&who, "ns").await.unwrap())),
                    Err(reason) => Err(reason),
                }
            }
        };
        assert_eq!(d(Some("alice-token")).await, Ok(("ops-alice".into(), true)));
        assert_eq!(d(Some("bob-token")).await, Ok(("dev-bob".into(), false)));
        assert_eq!(d(Some("guess")).await, Err("invalid bearer token"));
        assert_eq!(d(None).await, Err("missing bearer token"));
    }

    #[test]
    fn a_malformed_line_is_reported_with_the_file_and_line() {
        let err =
            parse_tokens_file(Path::new("/etc/af/tokens"), "# ok\nsha256:abcd admin x\n").err().unwrap().to_string();
        assert!(err.starts_with("tokens file /etc/af/tokens: line 2:") && err.contains("64 hex digits"), "{err}");
    }
}
