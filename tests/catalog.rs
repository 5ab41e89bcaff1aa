//! The catalog commands (`backups list|show|delete`, `drills list`) on a real
//! file store and on Garage: real backups of a real database, a real drill's
//! verdict, an incomplete backup, and something in the store that is not a
//! backup (never listed, never deleted).

mod support;

use serde_json::Value;
use support::{TestDatabase, assert_exit, env, file_store, operator, s3_store_url, stderr, unique_name, with_database};

fn json(args: &[&str]) -> Value {
    let out = operator(&[args, &["--output", "json"]].concat());
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect()
}

async fn catalog_commands_on(store: &str) {
    let source = TestDatabase::migrated("catalog").await;
    let seeded = operator(&["seed", "--database", source.url.expose(), "--scale", "small"]);
    assert_exit(&seeded, 0);
    for name in ["monday", "tuesday"] {
        let out = operator(&["backup", "--source", source.url.expose(), "--store", store, "--name", name]);
        assert_exit(&out, 0);
    }
    let target = with_database(&env("AF_TEST_PG_TARGET_URL"), &unique_name("scratch").replace('-', "_"));
    let drill = operator(&["drill", "--store", store, "--backup", "monday", "--target", &target, "--rto", "30m"]);
    assert_exit(&drill, 0);
    // A backup that never finished (data, no manifest), and an object that is
    // not a backup at all.
    let raw = artifortress_operator::store::open(store).await.unwrap();
    raw.put_bytes("wednesday/dump", b"half a dump".to_vec()).await.unwrap();
    raw.put_bytes("notes/readme.txt", b"not ours".to_vec()).await.unwrap();

    let list = json(&["backups", "list", "--store", store]);
    assert_eq!(names(&list), ["monday", "tuesday", "wednesday"], "complete by snapshot time, then the rest");
    let monday = &list[0];
    assert_eq!(monday["state"], "complete");
    assert_eq!(monday["manifest"]["source"]["database"], source.name.as_str());
    assert!(monday["storedBytes"].as_u64().unwrap() > 1000);
    assert_eq!(monday["drills"][0]["verdict"]["result"], "Passed");
    assert_eq!(list[2]["state"], "incomplete");
    assert!(list[2]["problem"].as_str().unwrap().contains("no manifest"));

    let table = operator(&["backups", "list", "--store", store]);
    assert_exit(&table, 0);
    let table = String::from_utf8(table.stdout).unwrap();
    let header = table.lines().next().unwrap();
    assert!(header.starts_with("NAME") && header.contains("LAST DRILL") && header.contains("RTO"), "{table}");
    let row = table.lines().find(|l| l.starts_with("monday")).unwrap();
    assert!(row.contains("complete") && row.contains("Passed") && row.contains("/ 30m"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("wednesday") && l.contains("incomplete")), "{table}");
    assert!(!table.contains("notes"), "not a backup: {table}");

    let show = operator(&["backups", "show", "--store", store, "monday"]);
    assert_exit(&show, 0);
    let show = String::from_utf8(show.stdout).unwrap();
    for expected in ["Backup:      monday", "State:       complete", "Tables:", "public.packages", "Drills:", "Passed"]
    {
        assert!(show.contains(expected), "{expected:?} in\n{show}");
    }
    let shown = json(&["backups", "show", "--store", store, "monday"]);
    assert_eq!(shown["manifest"]["backupName"], "monday");

    let drills = json(&["drills", "list", "--store", store]);
    assert_eq!(drills.as_array().unwrap().len(), 1);
    assert_eq!(drills[0]["backup"], "monday");
    assert_eq!(drills[0]["verdict"]["rto"]["met"], true);
    assert_eq!(json(&["drills", "list", "--store", store, "--backup", "tuesday"]), serde_json::json!([]));
    let unknown = operator(&["drills", "list", "--store", store, "--backup", "sunday"]);
    assert_exit(&unknown, 2);
    assert!(stderr(&unknown).contains("no backup \"sunday\"") && stderr(&unknown).contains("monday"));

    // The newest complete backup is what a recovery would use: not without --force.
    let refused = operator(&["backups", "delete", "--store", store, "tuesday"]);
    assert_exit(&refused, 2);
    assert!(
        stderr(&refused).contains("newest complete backup")
            && stderr(&refused).contains("monday would be the newest")
            && stderr(&refused).contains("--force"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(names(&json(&["backups", "list", "--store", store])), ["monday", "tuesday", "wednesday"]);
    let deleted = json(&["backups", "delete", "--store", store, "monday"]);
    assert!(deleted["objects"].as_u64().unwrap() >= 3, "manifest, dump and the drill's files: {deleted}");
    assert_exit(&operator(&["backups", "delete", "--store", store, "wednesday"]), 0);
    assert_eq!(names(&json(&["backups", "list", "--store", store])), ["tuesday"]);
    assert_exit(&operator(&["backups", "delete", "--store", store, "tuesday", "--force"]), 0);
    assert_eq!(json(&["backups", "list", "--store", store]), serde_json::json!([]));
    let keys: Vec<String> = raw.list("").await.unwrap().into_iter().map(|o| o.key).collect();
    assert_eq!(keys, ["notes/readme.txt"], "only the backups were deleted");
}

#[tokio::test]
async fn catalog_commands_on_a_file_store() {
    let (_dir, store) = file_store();
    catalog_commands_on(&store).await;
}

#[tokio::test]
async fn catalog_commands_on_garage() {
    let bucket = unique_name("catalog");
    support::s3_client().await.create_bucket().bucket(&bucket).send().await.unwrap();
    catalog_commands_on(&s3_store_url(&env("AF_TEST_S3_ENDPOINT"), &bucket, "prod/af")).await;
}

#[tokio::test]
async fn after_three_drills_the_report_links_a_history_chart_of_their_rto_and_rpo() {
    let (dir, store) = file_store();
    let source = TestDatabase::migrated("history").await;
    assert_exit(&operator(&["seed", "--database", source.url.expose(), "--scale", "small"]), 0);
    assert_exit(&operator(&["backup", "--source", source.url.expose(), "--store", &store, "--name", "base"]), 0);
    let reports = tempfile::tempdir().unwrap();
    let report = reports.path().join("drill.md");
    for _ in 0..3 {
        // Local drills are named by the second they start.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let target = with_database(&env("AF_TEST_PG_TARGET_URL"), &unique_name("scratch").replace('-', "_"));
        let args = ["drill", "--store", &store, "--backup", "base", "--target", &target, "--rto", "30m", "--rpo", "1h"];
        assert_exit(&operator(&[&args[..], &["--report", report.to_str().unwrap()]].concat()), 0);
    }
    let markdown = std::fs::read_to_string(&report).unwrap();
    let link = markdown
        .lines()
        .find_map(|l| l.strip_prefix("![RTO and RPO over the last drills](")?.strip_suffix(')'))
        .unwrap_or_else(|| panic!("the report links its chart:\n{markdown}"));
    assert!(markdown.contains("## History"), "{markdown}");
    let chart = std::fs::read_to_string(reports.path().join(link)).expect("the chart beside the report");
    let well_formed = |svg: &str| {
        svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>") && svg.contains("RTO measured")
    };
    assert!(well_formed(&chart), "{chart}");
    assert!(chart.contains("RTO and RPO of the last 3 drills"), "three drills drawn");
    assert_eq!(chart.matches("<circle").count(), 6, "a point for each drill's RTO and RPO, none failed");
    // The same chart is stored next to the last drill's report in the store.
    let drill = link.strip_suffix(".history.svg").unwrap();
    let stored = dir.path().join("base/drills").join(link);
    assert_eq!(std::fs::read_to_string(stored).unwrap(), chart, "{drill}");

    let out = reports.path().join("history.svg");
    let charted = operator(&["drills", "chart", "--store", &store, "--out", out.to_str().unwrap()]);
    assert_exit(&charted, 0);
    assert!(well_formed(&std::fs::read_to_string(&out).unwrap()));
    let (_empty, nothing) = file_store();
    let refused = operator(&["drills", "chart", "--store", &nothing, "--out", out.to_str().unwrap()]);
    assert_exit(&refused, 1);
    assert!(stderr(&refused).contains("nothing to chart"), "{}", stderr(&refused));
}
