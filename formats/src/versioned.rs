//! Reading a versioned JSON document: the version first, then the whole.

use serde::de::DeserializeOwned;

/// Why a stored document cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    /// Not the document it claims to be (bad JSON, a missing field, a wrong type).
    #[error("{kind} is not valid: {detail}")]
    Invalid { kind: &'static str, detail: String },
    /// Written by a newer tool in a format this one does not read.
    #[error(
        "{kind} format version {found} (written by {written_by}) is newer than this tool reads (up to version {supported}); use {written_by} or newer"
    )]
    Newer { kind: &'static str, found: u64, supported: u32, written_by: String },
}

/// Parses `bytes` as a `kind` document whose version is in `version_field`
/// (absent means version 1, the layout before versions were written).
pub(crate) fn parse<T: DeserializeOwned>(
    kind: &'static str,
    bytes: &[u8],
    version_field: &str,
    supported: u32,
) -> Result<T, FormatError> {
    let invalid = |e: serde_json::Error| FormatError::Invalid { kind, detail: e.to_string() };
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes).map_err(invalid)?;
    let version = match header.get(version_field) {
        None => 1,
        Some(v) => v.as_u64().filter(|v| *v >= 1).ok_or_else(|| FormatError::Invalid {
            kind,
            detail: format!("{version_field} must be a positive integer, found {v}"),
        })?,
    };
    if version > u64::from(supported) {
        let written_by = header
            .get("toolVersion")
            .and_then(|v| v.as_str())
            .map_or_else(|| "a newer artifortress-operator".to_string(), |s| truncated(s, 100));
        return Err(FormatError::Newer { kind, found: version, supported, written_by });
    }
    T::deserialize(serde_json::Value::Object(header)).map_err(invalid)
}

/// A value from the document, short enough for an error message.
fn truncated(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Doc {
        a: u32,
    }

    #[test]
    fn an_absent_version_is_version_one() {
        assert_eq!(parse::<Doc>("doc", br#"{"a": 1}"#, "v", 1), Ok(Doc { a: 1 }));
        assert_eq!(parse::<Doc>("doc", br#"{"a": 1, "v": 1, "later": true}"#, "v", 1), Ok(Doc { a: 1 }));
    }

    #[test]
    fn a_newer_version_names_the_tool_that_wrote_it() {
        let err = parse::<Doc>("doc", br#"{"v": 2, "toolVersion": "artifortress-operator 9.0.0"}"#, "v", 1)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "doc format version 2 (written by artifortress-operator 9.0.0) is newer than this tool reads (up to version 1); use artifortress-operator 9.0.0 or newer"
        );
    }

    #[test]
    fn broken_documents_are_invalid() {
        for bad in [&b"[]"[..], b"{", b"{\"v\": 0, \"a\": 1}", b"{\"v\": \"1\", \"a\": 1}", b"{}"] {
            assert!(matches!(parse::<Doc>("doc", bad, "v", 1), Err(FormatError::Invalid { .. })), "{bad:?}");
        }
    }
}
