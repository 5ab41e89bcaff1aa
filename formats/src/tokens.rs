//! The admin tokens file of the local `serve` command: one
//! `sha256:<64 hex digits> <admin|viewer> <actor>` per line, `#` comments and
//! blank lines ignored. Only hashes are stored; the tokens themselves never are.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    Viewer,
}

/// One line: the token's SHA-256, its role and who it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenEntry {
    pub sha256: [u8; 32],
    pub role: Role,
    pub actor: String,
}

/// A line that is not an entry; `line` counts from 1.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {reason}; expected `sha256:<64 hex digits> <admin|viewer> <actor>`")]
pub struct TokensFileError {
    pub line: usize,
    pub reason: String,
}

pub fn parse(text: &str) -> Result<Vec<TokenEntry>, TokensFileError> {
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let bad = |reason: String| TokensFileError { line: i + 1, reason };
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().take(4).collect();
        let [hash, role, actor] = fields[..] else {
            return Err(bad(if fields.len() > 3 {
                "more than 3 fields".into()
            } else {
                format!("{} fields", fields.len())
            }));
        };
        let digest = hash.strip_prefix("sha256:").ok_or_else(|| bad("the hash must start with sha256:".into()))?;
        let bytes = hex::decode(digest).map_err(|_| bad("the hash is not hex".into()))?;
        let sha256: [u8; 32] = bytes.try_into().map_err(|_| bad("the hash must have 64 hex digits".into()))?;
        let role = match role {
            "admin" => Role::Admin,
            "viewer" => Role::Viewer,
            other => return Err(bad(format!("unknown role {:?}", other.chars().take(40).collect::<String>()))),
        };
        entries.push(TokenEntry { sha256, role, actor: actor.to_string() });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    #[test]
    fn entries_comments_and_blank_lines() {
        let entries = parse(&format!("# admins\n{HASH} admin ops-alice\n\n{HASH} viewer bob  # read-only\n")).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[0].role, entries[0].actor.as_str()), (Role::Admin, "ops-alice"));
        assert_eq!((entries[1].role, entries[1].actor.as_str()), (Role::Viewer, "bob"));
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        let err = parse("# ok\nsha256:abcd admin x\n").unwrap_err().to_string();
        assert!(err.starts_with("line 2: the hash must have 64 hex digits"), "{err}");
        assert!(parse(&format!("{HASH} root x")).unwrap_err().to_string().contains("unknown role \"root\""));
        assert!(parse("plaintext-token admin x").unwrap_err().to_string().contains("sha256:"));
        assert!(parse(&format!("{HASH} admin x y")).unwrap_err().to_string().contains("more than 3 fields"));
    }
}
