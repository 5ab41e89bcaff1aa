//! The layering the architecture rests on (docs/architecture.md), checked on
//! the source: the engine, the stores and the database code know nothing of
//! Kubernetes, the CRDs, the controllers or the HTTP server; the stores do not
//! need the database code; controllers and server meet only in the registry of
//! installations; the formats crate depends on no Kubernetes crate; the
//! engine, the stores and the database code know nothing of Artifortress
//! (`src/artifortress/` is where that knowledge lives: the command line, the
//! server and the controllers bring the two together).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Every line of code (comments aside) of `dir`'s sources naming one of
/// `forbidden`, as `file:line: text`.
fn uses(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for file in rust_files(&root.join(dir)) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if !line.trim_start().starts_with("//") && forbidden.iter().any(|f| line.contains(f)) {
                found.push(format!("{}:{}: {}", file.strip_prefix(root).unwrap().display(), n + 1, line.trim()));
            }
        }
    }
    found
}

const KUBERNETES: [&str; 8] = [
    "crate::api",
    "crate::controller",
    "crate::server",
    "crate::installations",
    "kube::",
    "kube_runtime",
    "k8s_openapi",
    "schemars",
];

#[test]
fn engine_stores_and_database_code_know_no_kubernetes() {
    for dir in ["src/engine", "src/store", "src/db"] {
        assert_eq!(uses(dir, &KUBERNETES), Vec::<String>::new(), "{dir} must not depend on these");
    }
}

#[test]
fn engine_stores_and_database_code_know_nothing_of_artifortress() {
    for dir in ["src/engine", "src/store", "src/db"] {
        assert_eq!(uses(dir, &["crate::artifortress"]), Vec::<String>::new(), "{dir} stays generic");
    }
    // Artifortress's tables are named in its own module only.
    let tables = ["audit_log", "outbox_events", "search_index_jobs", "gc_runs", "upload_sessions", "artifact_entries"];
    for dir in ["src/engine", "src/store", "src/db", "src/server", "src/controller"] {
        assert_eq!(uses(dir, &tables), Vec::<String>::new(), "{dir} names Artifortress's tables");
    }
}

#[test]
fn stores_do_not_depend_on_the_database_code() {
    assert_eq!(uses("src/store", &["crate::db"]), Vec::<String>::new());
}

#[test]
fn controllers_and_server_meet_only_in_the_registry() {
    assert_eq!(uses("src/controller", &["crate::server"]), Vec::<String>::new());
    assert_eq!(uses("src/server", &["crate::controller"]), Vec::<String>::new());
}

#[test]
fn the_formats_crate_depends_on_no_kubernetes_crate() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("formats/Cargo.toml")).unwrap();
    for krate in ["kube", "k8s-openapi", "schemars"] {
        assert!(!manifest.lines().any(|l| l.trim_start().starts_with(krate)), "formats depends on {krate}");
    }
    assert_eq!(uses("formats/src", &KUBERNETES), Vec::<String>::new());
}

#[test]
fn the_check_sees_a_forbidden_use() {
    // A guard against a scan that silently finds no files.
    assert!(!uses("src/controller", &["crate::api"]).is_empty());
}

/// A module of the library (`engine::drill`) or of the binary (`bin::cli::drill`), by its file.
fn module_of(file: &Path, src: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut path: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if path.last().is_some_and(|last| last == "mod" || last == "lib") {
        path.pop();
    }
    if path.first().is_some_and(|first| first == "main" || first == "cli") {
        path.retain(|p| p != "main");
        path.insert(0, "bin".to_string());
    }
    path
}

/// Every path a source names from a module root (`crate::…`, `super::…`, the
/// library's name from the binary), `use` trees expanded: `use crate::a::{b, c::d}`
/// names `a::b` and `a::c::d`. Unit-test modules are left out: tests may reach anywhere.
fn named_paths(text: &str) -> Vec<Vec<String>> {
    let code: String = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    for root in ["crate::", "super::", "artifortress_operator::"] {
        for (at, _) in code.match_indices(root) {
            let before = at.checked_sub(1).map(|i| bytes[i] as char);
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut pos = at;
            use_tree(bytes, &mut pos, Vec::new(), &mut found);
        }
    }
    found
}

fn use_tree(bytes: &[u8], pos: &mut usize, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let skip_space = |pos: &mut usize| {
        while *pos < bytes.len() && (bytes[*pos] as char).is_whitespace() {
            *pos += 1;
        }
    };
    loop {
        skip_space(pos);
        let start = *pos;
        while *pos < bytes.len() && ((bytes[*pos] as char).is_alphanumeric() || bytes[*pos] == b'_') {
            *pos += 1;
        }
        let ident = std::str::from_utf8(&bytes[start..*pos]).unwrap();
        if ident.is_empty() {
            if bytes.get(*pos) == Some(&b'{') {
                *pos += 1;
                loop {
                    skip_space(pos);
                    match bytes.get(*pos) {
                        None => return,
                        Some(b'}') => {
                            *pos += 1;
                            return;
                        }
                        Some(b',') => *pos += 1,
                        Some(_) => {
                            let before = *pos;
                            use_tree(bytes, pos, prefix.clone(), out);
                            if *pos == before {
                                *pos += 1;
                            }
                        }
                    }
                }
            }
            out.push(prefix);
            return;
        }
        if ident != "self" {
            prefix.push(ident.to_string());
        }
        if bytes[*pos..].starts_with(b"::") {
            *pos += 2;
        } else {
            out.push(prefix);
            return;
        }
    }
}

/// Which modules each module imports (`a::b` → `{a::c, d}`): a named path goes
/// to the longest module it starts with. A module's own ancestors are left out:
/// a child may use what its parent defines for its children.
fn module_imports() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = rust_files(&src);
    let modules: std::collections::BTreeSet<Vec<String>> = files.iter().map(|f| module_of(f, &src)).collect();
    let mut imports = std::collections::BTreeMap::new();
    for file in &files {
        let this = module_of(file, &src);
        let is_dir_module = file.file_name().is_some_and(|n| n == "mod.rs" || n == "lib.rs" || n == "main.rs");
        let mut targets = std::collections::BTreeSet::new();
        for path in named_paths(&std::fs::read_to_string(file).unwrap()) {
            let mut absolute: Vec<String> = match path.first().map(String::as_str) {
                Some("crate") if this.first().is_some_and(|m| m == "bin") => vec!["bin".to_string()],
                Some("crate" | "artifortress_operator") => Vec::new(),
                _ => {
                    // super:: chains, from this module's parent (a mod.rs is its directory's module).
                    let mut base = this.clone();
                    if !is_dir_module {
                        base.pop();
                    }
                    base
                }
            };
            let mut rest = path.iter().skip(1).peekable();
            if path.first().is_some_and(|p| p == "super") {
                while rest.peek().is_some_and(|p| *p == "super") {
                    absolute.pop();
                    rest.next();
                }
            }
            absolute.extend(rest.cloned());
            let target = (0..=absolute.len()).rev().map(|n| absolute[..n].to_vec()).find(|m| modules.contains(m));
            if let Some(target) = target
                && target != this
                && !this.starts_with(&target)
            {
                targets.insert(target.join("::"));
            }
        }
        imports.insert(this.join("::"), targets);
    }
    imports
}

/// Groups of modules that import each other, directly or round a circle.
fn import_circles(
    imports: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Vec<Vec<String>> {
    let reaches = |from: &String| {
        let mut seen = std::collections::BTreeSet::new();
        let mut pending = vec![from.clone()];
        while let Some(m) = pending.pop() {
            for next in imports.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    pending.push(next.clone());
                }
            }
        }
        seen
    };
    let reach: std::collections::BTreeMap<&String, _> = imports.keys().map(|m| (m, reaches(m))).collect();
    let mut circles: Vec<Vec<String>> = Vec::new();
    for (m, from_m) in &reach {
        if !from_m.contains(*m) || circles.iter().any(|c| c.contains(m)) {
            continue;
        }
        let circle = reach
            .iter()
            .filter(|(o, from_o)| from_m.contains(**o) && from_o.contains(*m))
            .map(|(o, _)| (*o).clone())
            .collect();
        circles.push(circle);
    }
    circles
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let imports = module_imports();
    assert!(imports["engine::drill"].contains("engine::restore"), "the scan sees imports: {imports:?}");
    assert_eq!(import_circles(&imports), Vec::<Vec<String>>::new(), "import circles");
}

#[test]
fn the_circle_check_sees_a_circle() {
    let mut imports = module_imports();
    imports.get_mut("engine::restore").unwrap().insert("engine::drill".to_string());
    assert_eq!(import_circles(&imports), vec![vec!["engine::drill".to_string(), "engine::restore".to_string()]]);
}

/// Files a newcomer can read through: none over 650 lines (unit tests of a
/// large module live in its `tests.rs`), and in `controller/` and `cli/` no
/// function over 80 lines (decisions, builders and handlers kept apart).
#[test]
fn files_and_functions_stay_readable() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut too_long = Vec::new();
    for file in rust_files(&root.join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(root).unwrap().display().to_string();
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() > 650 {
            too_long.push(format!("{name}: {} lines", lines.len()));
        }
        if !(name.starts_with("src/controller/") || name.starts_with("src/cli/")) {
            continue;
        }
        for (start, line) in lines.iter().enumerate() {
            let code = line.trim_start();
            let indent = &line[..line.len() - code.len()];
            let signature = ["fn ", "pub fn ", "async fn ", "pub async fn ", "pub(super) fn "];
            if !signature.iter().any(|s| code.starts_with(s)) || code.ends_with(';') {
                continue;
            }
            let closing = format!("{indent}}}");
            let end = (start..lines.len()).find(|&i| lines[i] == closing).unwrap_or(start);
            if end - start + 1 > 80 {
                too_long.push(format!("{name}:{}: a function of {} lines", start + 1, end - start + 1));
            }
        }
    }
    assert_eq!(too_long, Vec::<String>::new());
}
