//! The layout of `src/`, checked: every module imports only from its own
//! layer or below, no import cycle joins its files (a child using its parent
//! module's items aside), the ground imports nothing of the crate, requests
//! and cookies stay in the web layer, and no file grows past its size.
//!
//! The layers, bottom to top, as the guide's `docs/layout.md`
//! names them. A new top-level module must be given one here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module's layer: 1 ground, 2 domain, 3 configuration and
/// errors, 4 the service, 5 the web layer, 6 the top.
const LAYERS: &[(&str, u8)] = &[
    ("client", 1),
    ("clock", 1),
    ("crypto", 1),
    ("hooks", 1),
    ("jwk", 1),
    ("log_limit", 1),
    ("origin", 1),
    ("rotation", 1),
    ("user", 1),
    ("csrf", 2),
    ("dbsc", 2),
    ("dpop", 2),
    ("store", 2),
    ("token", 2),
    ("config", 3),
    ("error", 3),
    ("revocation", 3),
    ("sessions", 4),
    ("web", 5),
    ("", 6), // lib.rs
    ("testing", 6),
];

/// Words that only the web layer may write (outside comments).
const WEB_ONLY: &[&str] = &["FromRequest", "local_cache", "CookieJar", "Request<'", "Response<'"];

/// The longest a source file may be, in lines, and the files allowed more,
/// each with its reason.
const MAX_LINES: usize = 500;
const LONGER_FILES: &[(&str, &str)] = &[];

/// One source file: its module path (`store::sqlite`), its text, and the
/// `mod` children it declares.
struct Module {
    file: PathBuf,
    path: Vec<String>,
    code: Vec<String>,
    lines: usize,
}

fn modules() -> Vec<Module> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../src");
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let relative = file.strip_prefix(&root).unwrap().with_extension("");
            let mut path: Vec<String> = relative
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            if path.last().is_some_and(|last| last == "mod" || last == "lib") {
                path.pop();
            }
            let text = std::fs::read_to_string(&file).unwrap();
            let lines = text.lines().count();
            // Comment lines (docs included) name paths without importing
            // them; an inline unit-test module (last in its file, by habit)
            // is a child of the file's module, not part of the layout.
            let all: Vec<&str> = text.lines().collect();
            let tests_at = all
                .windows(2)
                .position(|pair| pair[0].trim() == "#[cfg(test)]" && pair[1].trim_start().starts_with("mod tests {"))
                .unwrap_or(all.len());
            let code = all[..tests_at]
                .iter()
                .filter(|line| !line.trim_start().starts_with("//"))
                .map(|line| line.to_string())
                .collect();
            Module {
                file,
                path,
                code,
                lines,
            }
        })
        .collect()
}

fn collect(directory: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
}

fn layer_of(path: &[String]) -> u8 {
    let top = path.first().map_or("", String::as_str);
    LAYERS
        .iter()
        .find(|(name, _)| *name == top)
        .map(|(_, layer)| *layer)
        .unwrap_or_else(|| panic!("the module `{top}` has no layer: give it one in tests/architecture.rs"))
}

/// Every path a module names: the expanded `use` trees and the inline
/// `crate::…` and `super::…` paths, each as segments from the crate root.
fn paths_named(module: &Module) -> Vec<Vec<String>> {
    let code = module.code.join("\n");
    let children: BTreeSet<String> = module
        .code
        .iter()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub(crate) mod ")
                .or(line.strip_prefix("pub mod "))
                .or(line.strip_prefix("mod "))?;
            rest.strip_suffix(';').map(str::to_string)
        })
        .collect();
    let mut named = Vec::new();
    // `use` items start their line; they may span several.
    let mut lines = module.code.iter();
    while let Some(line) = lines.next() {
        let line = line.trim_start();
        let Some(item) = ["use ", "pub use ", "pub(crate) use ", "pub(super) use "]
            .iter()
            .find_map(|prefix| line.strip_prefix(prefix))
        else {
            continue;
        };
        let mut item = item.to_string();
        while !item.contains(';') {
            match lines.next() {
                Some(more) => item.push_str(more),
                None => break,
            }
        }
        let item = &item[..item.find(';').unwrap_or(item.len())];
        // `X as Y` names X; then the tree without its spaces.
        let mut words = item.split_whitespace();
        let mut tree = String::new();
        while let Some(word) = words.next() {
            if word == "as" {
                let renamed = words.next().unwrap_or("");
                // `as Y,` or `as Y}` keep their punctuation.
                tree.extend(renamed.chars().filter(|c| matches!(c, ',' | '}')));
            } else {
                tree.push_str(word);
            }
        }
        for path in expand(&tree) {
            if let Some(resolved) = resolve(module, &children, &path) {
                named.push(resolved);
            }
        }
    }
    // Inline paths: `crate::a::b(…)`, `super::a`.
    for anchor in ["crate::", "super::"] {
        let mut rest = code.as_str();
        while let Some(at) = rest.find(anchor) {
            let before = rest[..at].chars().last();
            rest = &rest[at..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let path: Vec<String> = rest[..end]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            rest = &rest[end.max(1)..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(resolved) = resolve(module, &children, &path) {
                named.push(resolved);
            }
        }
    }
    named
}

/// `a::{b, c::{d, e}}` as `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let Some(open) = tree.find('{') else {
        return vec![tree.split("::").filter(|s| !s.is_empty()).map(str::to_string).collect()];
    };
    let prefix: Vec<String> = tree[..open]
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|part| !part.is_empty())
        .flat_map(|part| {
            expand(part).into_iter().map(|rest| {
                let mut path = prefix.clone();
                path.extend(rest.into_iter().filter(|segment| segment != "self"));
                path
            })
        })
        .collect()
}

/// A path as segments from the crate root, when it names this crate.
fn resolve(module: &Module, children: &BTreeSet<String>, path: &[String]) -> Option<Vec<String>> {
    let first = path.first()?;
    let mut from_root = match first.as_str() {
        "crate" => Vec::new(),
        "super" => {
            // The parent of this file's module.
            let mut parent = module.path.clone();
            parent.pop()?;
            parent
        }
        "self" => module.path.clone(),
        name if children.contains(name) => module.path.clone(),
        _ => return None,
    };
    let skip = usize::from(matches!(first.as_str(), "crate" | "super" | "self"));
    let mut segments = path[skip..].iter().peekable();
    while segments.peek().is_some_and(|segment| segment.as_str() == "super") {
        segments.next();
        from_root.pop();
    }
    from_root.extend(segments.cloned());
    Some(from_root)
}

/// The module (a file's) that `path` lands in: its longest prefix that is one.
fn target<'m>(modules: &'m [Module], path: &[String]) -> &'m Module {
    (0..=path.len())
        .rev()
        .find_map(|len| modules.iter().find(|module| module.path == path[..len]))
        .expect("the crate root is a module")
}

fn is_ancestor(ancestor: &[String], of: &[String]) -> bool {
    ancestor.len() < of.len() && of.starts_with(ancestor)
}

/// The imports between files: (from, to) module paths, with the line of code
/// that makes each.
fn arrows(modules: &[Module]) -> BTreeMap<(Vec<String>, Vec<String>), String> {
    let mut arrows = BTreeMap::new();
    for module in modules {
        for path in paths_named(module) {
            let to = target(modules, &path);
            if to.path == module.path || is_ancestor(&to.path, &module.path) && !to.path.is_empty() {
                continue;
            }
            arrows
                .entry((module.path.clone(), to.path.clone()))
                .or_insert_with(|| path.join("::"));
        }
    }
    arrows
}

fn name(path: &[String]) -> String {
    if path.is_empty() {
        "lib".into()
    } else {
        path.join("::")
    }
}

#[test]
fn every_import_runs_down_the_layers() {
    let modules = modules();
    let mut wrong = Vec::new();
    for ((from, to), via) in arrows(&modules) {
        if to.is_empty() && !from.is_empty() {
            wrong.push(format!(
                "{} imports `{via}` through the crate root's re-exports: name the module it is in",
                name(&from)
            ));
        } else if layer_of(&to) > layer_of(&from) {
            wrong.push(format!(
                "{} (layer {}) imports `{via}` from {} (layer {}), a layer above it",
                name(&from),
                layer_of(&from),
                name(&to),
                layer_of(&to)
            ));
        } else if layer_of(&from) == 1 && !from.is_empty() {
            wrong.push(format!(
                "{} is ground, yet imports `{via}` from {}",
                name(&from),
                name(&to)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that run the wrong way:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_import_cycle_joins_the_files() {
    let modules = modules();
    let arrows = arrows(&modules);
    let mut graph: BTreeMap<Vec<String>, Vec<Vec<String>>> = BTreeMap::new();
    for (from, to) in arrows.keys() {
        graph.entry(from.clone()).or_default().push(to.clone());
    }
    // Depth-first, keeping the path walked: meeting a module on it closes a cycle.
    fn walk(
        at: &[String],
        graph: &BTreeMap<Vec<String>, Vec<Vec<String>>>,
        done: &mut BTreeSet<Vec<String>>,
        walked: &mut Vec<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        if let Some(start) = walked.iter().position(|module| module == at) {
            let mut cycle = walked[start..].to_vec();
            cycle.push(at.to_vec());
            return Some(cycle);
        }
        if done.contains(at) {
            return None;
        }
        walked.push(at.to_vec());
        for next in graph.get(at).into_iter().flatten() {
            if let Some(cycle) = walk(next, graph, done, walked) {
                return Some(cycle);
            }
        }
        walked.pop();
        done.insert(at.to_vec());
        None
    }
    let mut done = BTreeSet::new();
    for module in &modules {
        if let Some(cycle) = walk(&module.path, &graph, &mut done, &mut Vec::new()) {
            let shown: Vec<String> = cycle.iter().map(|path| name(path)).collect();
            panic!("an import cycle: {}", shown.join(" -> "));
        }
    }
    assert!(
        graph.len() > 20,
        "the walk saw the crate's imports ({} files import)",
        graph.len()
    );
}

#[test]
fn requests_responses_and_cookies_stay_in_the_web_layer() {
    let mut found = Vec::new();
    for module in modules() {
        if module.path.first().is_some_and(|top| top == "web") {
            continue;
        }
        for line in &module.code {
            for word in WEB_ONLY {
                if line.contains(word) {
                    found.push(format!("{}: `{word}` in: {}", module.file.display(), line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "web-layer code outside src/web/:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_source_file_outgrows_its_size() {
    let long: Vec<String> = modules()
        .into_iter()
        .filter(|module| module.lines > MAX_LINES)
        .filter(|module| !LONGER_FILES.iter().any(|(file, _)| module.file.ends_with(file)))
        .map(|module| format!("{} has {} lines", module.file.display(), module.lines))
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (split them, or name the one concept that needs it in LONGER_FILES):\n{}",
        long.join("\n")
    );
}

#[test]
fn the_checks_see_what_they_check() {
    // The reader of imports itself: a grouped `use`, `super::`, a child.
    let module = Module {
        file: PathBuf::from("src/a/b.rs"),
        path: vec!["a".into(), "b".into()],
        code: vec![
            "mod c;".into(),
            "use crate::x::{y::{Z, W}, v};".into(),
            "use super::d::E;".into(),
            "use base64::Engine as _;".into(),
            "use crate::store::{Database as Db, StoreError};".into(),
            "use c::F;".into(),
            "fn f() { crate::g::h(); }".into(),
        ],
        lines: 5,
    };
    let named: BTreeSet<String> = paths_named(&module).iter().map(|path| path.join("::")).collect();
    for expected in [
        "x::y::Z",
        "x::y::W",
        "x::v",
        "a::d::E",
        "a::b::c::F",
        "g::h",
        "store::Database",
        "store::StoreError",
    ] {
        assert!(named.contains(expected), "{expected} not in {named:?}");
    }
}
