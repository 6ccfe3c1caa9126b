//! The layout rules of the two library crates, checked on their source text: no import cycle between sibling
//! modules, and no source file so long that it does the work of a folder.
//!
//! A cycle is judged among the children of each module (plus the parent's own items): `a` depends on `b` when a
//! non-test line of `a`'s subtree names something defined in `b`'s subtree (`use`, or a `crate::`/`super::` path in
//! code). A parent's `pub use` re-exports are a facade, not a dependency, and a name reached through one counts as a
//! dependency on the module that defines it. Test modules (`#[cfg(test)]` to the end of a file) are left out: tests
//! may reach across the tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest source file allowed, in lines (the reshape's "no file over ~600 lines").
const MAX_LINES: usize = 650;

type ModPath = Vec<String>;

#[derive(Debug, Default)]
struct Module {
    file: PathBuf,
    /// `pub use` names of this module → the full path they stand for.
    reexports: BTreeMap<String, ModPath>,
    /// Paths referenced by the module's own (non-test) code, with whether the reference is a `pub use`.
    references: Vec<(ModPath, bool)>,
}

/// Every module of a library crate, by path (the root is the empty path).
fn modules(src: &Path) -> BTreeMap<ModPath, Module> {
    let mut out = BTreeMap::new();
    collect(src, &src.join("lib.rs"), Vec::new(), &mut out);
    out
}

fn collect(src: &Path, file: &Path, path: ModPath, out: &mut BTreeMap<ModPath, Module>) {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let code = non_test_code(&text);
    let dir = if path.is_empty() || file.ends_with("mod.rs") {
        file.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        file.with_extension("")
    };
    let mut module = Module {
        file: file
            .strip_prefix(src.parent().unwrap_or(src))
            .unwrap_or(file)
            .to_path_buf(),
        ..Module::default()
    };
    for statement in statements(&code) {
        let words: Vec<&str> = statement.split_whitespace().collect();
        let is_pub = words.first().is_some_and(|w| w.starts_with("pub"));
        let rest: Vec<&str> = words
            .iter()
            .skip_while(|w| w.starts_with("pub"))
            .copied()
            .collect();
        match rest.first() {
            Some(&"mod") if rest.len() == 2 && !statement.contains('{') => {
                let name = rest[1].trim_end_matches(';').to_string();
                let candidates = [
                    dir.join(format!("{name}.rs")),
                    dir.join(&name).join("mod.rs"),
                ];
                if let Some(child) = candidates.iter().find(|c| c.exists()) {
                    let mut child_path = path.clone();
                    child_path.push(name);
                    collect(src, child, child_path, out);
                }
            }
            Some(&"use") => {
                let tree = statement
                    .split_once("use")
                    .map_or("", |(_, tree)| tree)
                    .trim()
                    .trim_end_matches(';');
                for (full, alias) in expand_use(tree) {
                    if let Some(resolved) = absolute(&path, &full) {
                        if is_pub {
                            module.reexports.insert(alias, resolved.clone());
                        }
                        module.references.push((resolved, is_pub));
                    }
                }
            }
            _ => {
                for reference in inline_paths(&statement) {
                    if let Some(resolved) = absolute(&path, &reference) {
                        module.references.push((resolved, false));
                    }
                }
            }
        }
    }
    out.insert(path, module);
}

/// The file without comments and without its test module.
fn non_test_code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        let without_comment = match line.find("// ") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        out.push_str(without_comment);
        out.push('\n');
    }
    out
}

/// Rough statements: `use …;` and `mod …;` items, and every other line on its own (enough for path scanning).
fn statements(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending: Option<String> = None;
    for line in code.lines() {
        let trimmed = line.trim();
        if let Some(current) = pending.as_mut() {
            current.push(' ');
            current.push_str(trimmed);
            if trimmed.ends_with(';') {
                out.extend(pending.take());
            }
            continue;
        }
        let head = trimmed
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub ");
        if head.starts_with("use ") && !trimmed.ends_with(';') {
            pending = Some(trimmed.to_string());
        } else {
            out.push(trimmed.to_string());
        }
    }
    out
}

/// `a::{b, c::{d as e}}` → `[(a::b, b), (a::c::d, e)]`.
fn expand_use(tree: &str) -> Vec<(Vec<String>, String)> {
    let words: Vec<&str> = tree.split_whitespace().collect();
    let mut tree = words.join(" ");
    for punct in ["::", "{", "}", ","] {
        tree = tree
            .replace(&format!(" {punct}"), punct)
            .replace(&format!("{punct} "), punct);
    }
    let mut out = Vec::new();
    expand_into(&tree, &mut Vec::new(), &mut out);
    out
}

fn expand_into(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let depth = prefix.len();
        prefix.extend(head);
        for part in split_top_level(inner) {
            expand_into(part, prefix, out);
        }
        prefix.truncate(depth);
        return;
    }
    let (path, alias) = match tree.split_once(" as ") {
        Some((p, a)) => (p, Some(a)),
        None => (tree, None),
    };
    let mut full = prefix.clone();
    full.extend(
        path.split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    );
    if full.last().is_some_and(|s| s == "self") {
        full.pop();
    }
    if let Some(last) = full.last().cloned() {
        out.push((full, alias.map_or(last, str::to_string)));
    }
}

fn split_top_level(text: &str) -> Vec<&str> {
    let (mut depth, mut start, mut parts) = (0, 0, Vec::new());
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// `crate::a::b`, `super::c`, `self::d` paths written in code.
fn inline_paths(line: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = line[from..].find(start) {
            let at = from + i;
            let before = line[..at].chars().next_back();
            from = at + start.len();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = line[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(
                path.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            );
        }
    }
    out
}

/// A path made absolute from module `at` (`crate::`, `super::`, `self::` or a child module's name).
fn absolute(at: &ModPath, path: &[String]) -> Option<ModPath> {
    let (mut base, mut rest) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("super") | Some("self") => (at.clone(), &path[1..]),
        // A bare path names a child module (2018 paths) or another crate; another crate resolves to `at` itself,
        // which the cycle search ignores.
        Some(_) => (at.clone(), path),
        None => return None,
    };
    if path[0] == "super" {
        base.pop();
    }
    while rest.first().is_some_and(|s| s == "super") {
        base.pop();
        rest = &rest[1..];
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The module a path refers into: the longest known module prefix, following re-exports of the last segment.
fn target(mods: &BTreeMap<ModPath, Module>, path: &ModPath, depth: usize) -> Option<ModPath> {
    let prefix_len = (0..=path.len())
        .rev()
        .find(|&n| mods.contains_key(&path[..n]))?;
    let module = path[..prefix_len].to_vec();
    if prefix_len < path.len() && depth < 8 {
        if let Some(real) = mods[&module].reexports.get(&path[prefix_len]) {
            let mut followed = real.clone();
            followed.extend(path[prefix_len + 1..].iter().cloned());
            return target(mods, &followed, depth + 1);
        }
    }
    Some(module)
}

/// Cycles among siblings: `(parent, cycle members)`, a member `"(self)"` being the parent's own items.
fn cycles(mods: &BTreeMap<ModPath, Module>) -> Vec<(String, Vec<String>)> {
    let mut graphs: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut evidence: BTreeMap<(ModPath, String, String), String> = BTreeMap::new();
    for (from, module) in mods {
        for (reference, is_pub_use) in &module.references {
            let Some(to) = target(mods, reference, 0) else {
                continue;
            };
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            let parent = from[..common].to_vec();
            let side = |m: &ModPath| m.get(common).cloned().unwrap_or_else(|| "(self)".into());
            let (a, b) = (side(from), side(&to));
            if a == b || (*is_pub_use && a == "(self)") {
                continue;
            }
            evidence
                .entry((parent.clone(), a.clone(), b.clone()))
                .or_insert_with(|| {
                    format!("{} names {}", module.file.display(), reference.join("::"))
                });
            graphs
                .entry(parent)
                .or_default()
                .entry(a)
                .or_default()
                .insert(b);
        }
    }
    let mut found = Vec::new();
    for (parent, graph) in graphs {
        let reach = |start: &String| {
            let mut seen = BTreeSet::new();
            let mut stack = vec![start.clone()];
            while let Some(n) = stack.pop() {
                for next in graph.get(&n).into_iter().flatten() {
                    if seen.insert(next.clone()) {
                        stack.push(next.clone());
                    }
                }
            }
            seen
        };
        let mut reported = BTreeSet::new();
        for node in graph.keys() {
            if reported.contains(node) || !reach(node).contains(node) {
                continue;
            }
            let members: Vec<String> = graph
                .keys()
                .filter(|other| reach(node).contains(*other) && reach(other).contains(node))
                .cloned()
                .collect();
            reported.extend(members.iter().cloned());
            let mut described = members.clone();
            for a in &members {
                for b in graph
                    .get(a)
                    .into_iter()
                    .flatten()
                    .filter(|b| members.contains(*b))
                {
                    if let Some(why) = evidence.get(&(parent.clone(), a.clone(), b.clone())) {
                        described.push(format!("\n    {a} → {b}: {why}"));
                    }
                }
            }
            found.push((format!("crate::{}", parent.join("::")), described));
        }
    }
    found
}

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("src")
}

#[test]
fn no_import_cycle_between_sibling_modules() {
    let mut problems = Vec::new();
    for krate in ["mock-vllm", "e2e"] {
        for (parent, members) in cycles(&modules(&crate_src(krate))) {
            let (names, edges): (Vec<String>, Vec<String>) =
                members.into_iter().partition(|m| !m.starts_with('\n'));
            problems.push(format!(
                "{krate}: {parent}: {}{}",
                names.join(" ⇄ "),
                edges.concat()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "import cycles:\n{}",
        problems.join("\n")
    );
}

#[test]
fn no_source_file_does_the_work_of_a_folder() {
    let mut long = Vec::new();
    for krate in ["mock-vllm", "e2e"] {
        let mut stack = vec![crate_src(krate)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("readable src").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let lines = std::fs::read_to_string(&path).map_or(0, |t| t.lines().count());
                    if lines > MAX_LINES {
                        long.push(format!("{} ({lines} lines)", path.display()));
                    }
                }
            }
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines: {}",
        long.join(", ")
    );
}

#[test]
fn the_checker_sees_a_cycle_and_follows_reexports() {
    let at = |p: &str| {
        p.split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect::<ModPath>()
    };
    let mut mods = BTreeMap::new();
    let module = |refs: &[(&str, bool)], reexports: &[(&str, &str)]| Module {
        file: PathBuf::new(),
        reexports: reexports
            .iter()
            .map(|(n, p)| (n.to_string(), at(p)))
            .collect(),
        references: refs.iter().map(|(p, pub_use)| (at(p), *pub_use)).collect(),
    };
    mods.insert(
        at(""),
        module(&[("a::Thing", true)], &[("Thing", "a::Thing")]),
    );
    mods.insert(at("a"), module(&[("b::f", false)], &[]));
    mods.insert(at("b"), module(&[("Thing", false)], &[]));
    let found = cycles(&mods);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "crate::");
    assert_eq!(found[0].1[..2], ["a".to_string(), "b".to_string()]);
    assert!(found[0].1[3].contains("b → a") && found[0].1[3].contains("names Thing"));
    mods.insert(at("b"), module(&[], &[]));
    assert!(
        cycles(&mods).is_empty(),
        "no cycle once b no longer names a's item"
    );
    assert_eq!(
        expand_use("super::{a, b::{C as D, self}}"),
        vec![
            (at("super::a"), "a".to_string()),
            (at("super::b::C"), "D".to_string()),
            (at("super::b"), "b".to_string()),
        ]
    );
}
