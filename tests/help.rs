//! The command line's help, command by command, against the texts kept in
//! `tests/fixtures/help/` (one file per command: `root.txt`, `backup.txt`,
//! `backups-list.txt`, …). A changed flag or description shows up here as a
//! diff to review; once it reads right, `AF_UPDATE_HELP=1 cargo test --test
//! help` writes the new texts. Commands are found by walking the help itself,
//! so a new command without a text fails too.

use std::collections::BTreeMap;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/help")
}

/// `--help` of a command path, in an environment without the variables whose
/// values clap would show (`[env: POD_NAMESPACE=…]`).
fn help(path: &[String]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_artifortress-operator"))
        .args(path)
        .arg("--help")
        .env_clear()
        .output()
        .expect("run the operator");
    assert!(out.status.success(), "{path:?} --help: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// The subcommands a help text lists (`help` itself aside).
fn subcommands(text: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// Every command's help, by fixture file name.
fn every_help() -> BTreeMap<String, String> {
    let mut texts = BTreeMap::new();
    let mut pending = vec![Vec::<String>::new()];
    while let Some(path) = pending.pop() {
        let text = help(&path);
        for sub in subcommands(&text) {
            pending.push([path.clone(), vec![sub]].concat());
        }
        let name = if path.is_empty() { "root".to_string() } else { path.join("-") };
        texts.insert(format!("{name}.txt"), text);
    }
    texts
}

#[test]
fn every_commands_help_reads_as_reviewed() {
    let texts = every_help();
    assert!(texts.len() > 15 && texts.contains_key("backups-list.txt"), "the walk found the commands: {texts:?}");
    if std::env::var_os("AF_UPDATE_HELP").is_some() {
        std::fs::create_dir_all(fixtures()).unwrap();
        for (name, text) in &texts {
            std::fs::write(fixtures().join(name), text).unwrap();
        }
    }
    let mut kept: Vec<String> =
        std::fs::read_dir(fixtures()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    kept.sort();
    assert_eq!(kept, texts.keys().cloned().collect::<Vec<_>>(), "one kept text per command, no more");
    for (name, text) in &texts {
        let expected = std::fs::read_to_string(fixtures().join(name)).unwrap();
        assert!(*text == expected, "help of {name} changed:\n--- kept\n{expected}\n--- now\n{text}");
    }
}
