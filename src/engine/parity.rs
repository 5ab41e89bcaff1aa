//! Comparing a restored database with the numbers its manifest recorded.

use std::collections::HashMap;

use super::manifest::TableSnapshot;
use super::verdict::TableParity;

/// One row per expected table, plus the reason for every mismatch. `restored`
/// holds what was measured after the restore; a table absent from it is missing.
pub fn compare(expected: &[TableSnapshot], restored: &[TableSnapshot]) -> (Vec<TableParity>, Vec<String>) {
    let found: HashMap<&str, &TableSnapshot> = restored.iter().map(|t| (t.table.as_str(), t)).collect();
    let mut rows = Vec::with_capacity(expected.len());
    let mut failures = Vec::new();
    for want in expected {
        let got = found.get(want.table.as_str());
        let restored_rows = got.map(|g| g.rows);
        let restored_checksum = got.and_then(|g| g.checksum.clone());
        let counts_match = restored_rows == Some(want.rows);
        let checksums_match = want.checksum.is_none() || restored_checksum == want.checksum;
        match (got, counts_match, checksums_match) {
            (None, _, _) => failures.push(format!(
                "parity: table {} is missing after the restore (expected {} rows)",
                want.table, want.rows
            )),
            (Some(g), false, _) => failures.push(format!(
                "parity: table {} has {} rows after the restore, the backup recorded {}",
                want.table, g.rows, want.rows
            )),
            (Some(_), true, false) => failures.push(format!(
                "parity: table {} content checksum differs: restored {}, backup recorded {}",
                want.table,
                restored_checksum.as_deref().unwrap_or("none"),
                want.checksum.as_deref().unwrap_or("none")
            )),
            _ => {}
        }
        rows.push(TableParity {
            table: want.table.clone(),
            expected: want.rows,
            restored: restored_rows,
            expected_checksum: want.checksum.clone(),
            restored_checksum,
            matches: got.is_some() && counts_match && checksums_match,
        });
    }
    (rows, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(table: &str, rows: i64, checksum: Option<&str>) -> TableSnapshot {
        TableSnapshot { table: table.into(), rows, checksum: checksum.map(str::to_string) }
    }

    #[test]
    fn equal_numbers_match() {
        let (rows, failures) = compare(&[snap("public.a", 3, None)], &[snap("public.a", 3, None)]);
        assert!(failures.is_empty());
        assert!(rows[0].matches);
        assert_eq!(rows[0].restored, Some(3));
    }

    #[test]
    fn a_count_mismatch_names_the_table_and_both_numbers() {
        let (rows, failures) = compare(&[snap("public.a", 3, None)], &[snap("public.a", 2, None)]);
        assert!(!rows[0].matches);
        assert_eq!(failures, ["parity: table public.a has 2 rows after the restore, the backup recorded 3"]);
    }

    #[test]
    fn a_missing_table_fails() {
        let (rows, failures) = compare(&[snap(r#""S"."T""#, 5, None)], &[]);
        assert_eq!(rows[0].restored, None);
        assert!(!rows[0].matches);
        assert!(failures[0].contains(r#""S"."T" is missing"#) && failures[0].contains("5 rows"));
    }

    #[test]
    fn checksums_are_compared_when_recorded() {
        let (rows, failures) = compare(&[snap("public.a", 3, Some("42"))], &[snap("public.a", 3, Some("41"))]);
        assert!(!rows[0].matches);
        assert!(failures[0].contains("restored 41, backup recorded 42"), "{failures:?}");
        let (rows, failures) = compare(&[snap("public.a", 3, Some("42"))], &[snap("public.a", 3, Some("42"))]);
        assert!(rows[0].matches && failures.is_empty());
    }
}
