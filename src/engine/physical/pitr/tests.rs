use super::*;

#[test]
fn recovery_targets_read_as_written() {
    assert_eq!("latest".parse::<Target>(), Ok(Target::Latest));
    assert_eq!("16/B374D848".parse::<Target>(), Ok(Target::Lsn(Lsn(0x16_B374_D848))));
    assert_eq!(
        "2026-12-01T10:00:00+01:00".parse::<Target>(),
        Ok(Target::Time("2026-12-01T09:00:00Z".parse().unwrap()))
    );
    assert_eq!("random:24h".parse::<Target>(), Ok(Target::Random(Duration::from_secs(86_400))));
    for bad in ["random:", "random:0s", "random:soon", "yesterday", "16/"] {
        let err = bad.parse::<Target>().unwrap_err();
        assert!(err.contains(bad), "{bad}: {err}");
    }
}
