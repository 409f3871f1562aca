//! The layers of `src/`: every top-level module belongs to one layer, and a module imports only
//! from its own layer or the layers below, with no cycle inside a layer, and no cycle between
//! sibling files anywhere. The test reads the `crate::` (and, in the CLI, `custody::`) and
//! `super::` paths of every file, so a new upward import fails here with its file and line.
//! `scripts/layers` prints the graph this test checks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first, and the top-level modules in each.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &[
            "digest",
            "reference",
            "oci",
            "hint",
            "glob",
            "http",
            "time",
            "spool",
        ],
    ),
    ("storage", &["store", "transfer"]),
    (
        "evidence",
        &[
            "source", "ci", "sbom", "attest", "sign", "attach", "trust", "vex", "buildkit",
        ],
    ),
    ("decisions", &["sources", "vuln", "policy", "verify"]),
    (
        "workflows",
        &[
            "release", "promote", "prune", "rescan", "tree", "audit", "serve",
        ],
    ),
    // The fuzzing entry points are a harness over every parser, so they sit on top, like the CLI.
    ("cli", &["cli", "main", "fuzzing"]),
];

/// One import: which module (as a path of names) names which, and where.
struct Edge {
    from: Vec<String>,
    to: Vec<String>,
    at: String,
}

fn layer_of(module: &str) -> Option<(usize, &'static str)> {
    LAYERS
        .iter()
        .enumerate()
        .find(|(_, (_, modules))| modules.contains(&module))
        .map(|(i, (name, _))| (i, *name))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("src/ reads")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The folders of `src/` that hold a layer's modules, named as the layer.
const LAYER_FOLDERS: &[&str] = &[
    "foundation",
    "storage",
    "evidence",
    "decisions",
    "workflows",
];

/// `path` without a leading layer folder: `foundation::digest::Digest` is `digest::Digest`.
fn without_layer(mut path: Vec<String>) -> Vec<String> {
    if path
        .first()
        .is_some_and(|p| LAYER_FOLDERS.contains(&p.as_str()))
    {
        path.remove(0);
    }
    path
}

/// The layer folder a file sits in, if any.
fn folder_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.iter().next()?.to_string_lossy().into_owned();
    (LAYER_FOLDERS.contains(&first.as_str()) && rel.iter().count() > 1).then_some(first)
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `lib.rs` is the root, `main.rs` is `main`; a
/// leading layer folder is not part of the name (`src/storage/store/mod.rs` is `store`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    without_layer(module_path(src, file))
}

fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    match last.as_str() {
        "mod.rs" | "lib.rs" => {}
        name => parts.push(name.trim_end_matches(".rs").to_owned()),
    }
    parts
}

/// The code of a file without comments and without its unit tests (test code may reach up;
/// a `tests.rs` file is skipped whole).
fn code_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut iter = text.lines().peekable();
    while let Some(line) = iter.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && iter
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests"))
        {
            break;
        }
        let code = if trimmed.starts_with("//") {
            ""
        } else {
            line.split(" // ").next().unwrap_or_default()
        };
        lines.push(code.to_owned());
    }
    lines
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Every path after `prefix` (`crate::`, `custody::`, `super::`) in `code`: the names it
/// walks, with the 1-based line it starts on. `prefix::{a::b, c}` gives `a::b` and `c`.
fn paths_after(code: &str, prefix: &str) -> Vec<(Vec<String>, usize)> {
    let mut found = Vec::new();
    let mut start = 0;
    while let Some(i) = code[start..].find(prefix) {
        let at = start + i;
        start = at + prefix.len();
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let line = code[..at].matches('\n').count() + 1;
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 || (depth == 1 && c == ',') {
                    found.push((walk(item.trim()), line));
                    item.clear();
                    if depth == 0 {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
        } else {
            found.push((walk(rest), line));
        }
    }
    found.retain(|(p, _)| !p.is_empty() && p[0] != "self");
    found
}

/// `a::b::{c, d}` or `a::b::C` → `[a, b, C]` (the names before any group).
fn walk(path: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = path;
    loop {
        let name = ident(rest);
        if name.is_empty() {
            break;
        }
        names.push(name.to_owned());
        match rest[name.len()..].strip_prefix("::") {
            Some(more) => rest = more,
            None => break,
        }
    }
    names
}

/// The longest known module that `path` starts with.
fn resolve(path: &[String], modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|candidate| modules.contains(candidate))
}

fn imports() -> (Vec<Edge>, BTreeSet<Vec<String>>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut edges = Vec::new();
    for file in &files {
        let from = module_of(&src, file);
        if from.is_empty() || from.last().is_some_and(|m| m == "tests") {
            continue;
        }
        let in_cli = from[0] == "cli" || from[0] == "main";
        let code = code_lines(&std::fs::read_to_string(file).expect("source reads")).join("\n");
        let shown = file
            .strip_prefix(src.parent().expect("crate root"))
            .expect("in crate");
        let mut targets = paths_after(&code, "crate::");
        if in_cli {
            targets.extend(paths_after(&code, "custody::"));
        }
        // `super::` from `a/b.rs` (module a::b) names a::…; from `a/mod.rs` (module a), the root.
        let full_from = module_path(&src, file);
        let parent = &full_from[..full_from.len() - 1];
        for (path, line) in paths_after(&code, "super::") {
            let mut full = parent.to_vec();
            full.extend(path);
            targets.push((full, line));
        }
        for (path, line) in targets {
            let Some(to) = resolve(&without_layer(path), &modules) else {
                continue;
            };
            if to != from {
                edges.push(Edge {
                    from: from.clone(),
                    to,
                    at: format!("{}:{line}", shown.display()),
                });
            }
        }
    }
    (edges, modules)
}

/// Strongly connected components of more than one node (Tarjan's algorithm, iteratively small).
fn cycles<N: Ord + Clone>(graph: &BTreeMap<N, BTreeSet<N>>) -> Vec<Vec<N>> {
    struct State<N> {
        index: BTreeMap<N, usize>,
        low: BTreeMap<N, usize>,
        stack: Vec<N>,
        on_stack: BTreeSet<N>,
        out: Vec<Vec<N>>,
    }
    fn visit<N: Ord + Clone>(n: &N, g: &BTreeMap<N, BTreeSet<N>>, s: &mut State<N>) {
        let i = s.index.len();
        s.index.insert(n.clone(), i);
        s.low.insert(n.clone(), i);
        s.stack.push(n.clone());
        s.on_stack.insert(n.clone());
        for m in g.get(n).into_iter().flatten() {
            if !s.index.contains_key(m) {
                visit(m, g, s);
                let low = s.low[n].min(s.low[m]);
                s.low.insert(n.clone(), low);
            } else if s.on_stack.contains(m) {
                let low = s.low[n].min(s.index[m]);
                s.low.insert(n.clone(), low);
            }
        }
        if s.low[n] == s.index[n] {
            let mut component = Vec::new();
            while let Some(m) = s.stack.pop() {
                s.on_stack.remove(&m);
                let done = &m == n;
                component.push(m);
                if done {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for n in graph.keys() {
        if !s.index.contains_key(n) {
            visit(n, graph, &mut s);
        }
    }
    s.out
}

/// What is wrong with the imports: unmapped modules, upward imports, cycles.
fn problems(edges: &[Edge], modules: &BTreeSet<Vec<String>>) -> Vec<String> {
    let mut problems = Vec::new();
    for top in modules
        .iter()
        .filter_map(|m| m.first())
        .collect::<BTreeSet<_>>()
    {
        if layer_of(top).is_none() {
            problems.push(format!(
                "src/{top}: module {top} is in no layer; add it to LAYERS in tests/it/layers.rs"
            ));
        }
    }
    let mut top_graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in edges {
        let (from, to) = (&e.from[0], &e.to[0]);
        if from == to {
            continue;
        }
        let (Some((fl, fname)), Some((tl, tname))) = (layer_of(from), layer_of(to)) else {
            continue;
        };
        if tl > fl {
            problems.push(format!(
                "{}: {from} ({fname}) imports {} from a higher layer ({tname})",
                e.at,
                e.to.join("::")
            ));
        } else if tl == fl {
            top_graph
                .entry(from.clone())
                .or_default()
                .insert(to.clone());
        }
    }
    for cycle in cycles(&top_graph) {
        let at: Vec<&str> = edges
            .iter()
            .filter(|e| e.from[0] != e.to[0])
            .filter(|e| cycle.contains(&e.from[0]) && cycle.contains(&e.to[0]))
            .map(|e| e.at.as_str())
            .collect();
        problems.push(format!(
            "modules {} import each other: {}",
            cycle.join(", "),
            at.join(", ")
        ));
    }
    // Between files: a module may use its parent and its children; siblings must not form a
    // cycle.
    let related = |a: &[String], b: &[String]| a.starts_with(b) || b.starts_with(a);
    let mut file_graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for e in edges.iter().filter(|e| !related(&e.from, &e.to)) {
        file_graph
            .entry(e.from.clone())
            .or_default()
            .insert(e.to.clone());
    }
    for cycle in cycles(&file_graph) {
        let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
        let at: Vec<&str> = edges
            .iter()
            .filter(|e| !related(&e.from, &e.to))
            .filter(|e| cycle.contains(&e.from) && cycle.contains(&e.to))
            .map(|e| e.at.as_str())
            .collect();
        problems.push(format!(
            "files of {} import each other: {}",
            names.join(", "),
            at.join(", ")
        ));
    }
    problems
}

/// The layers with their modules, then every import between top-level modules grouped by
/// layer pair, lowest first.
fn graph(edges: &[Edge]) -> String {
    let mut out = String::new();
    for (i, (name, modules)) in LAYERS.iter().enumerate() {
        out.push_str(&format!("{i} {name}: {}\n", modules.join(", ")));
    }
    let mut pairs: BTreeMap<(usize, usize), BTreeSet<(String, String)>> = BTreeMap::new();
    for e in edges {
        let (from, to) = (&e.from[0], &e.to[0]);
        if from == to {
            continue;
        }
        if let (Some((fl, _)), Some((tl, _))) = (layer_of(from), layer_of(to)) {
            pairs
                .entry((fl, tl))
                .or_default()
                .insert((from.clone(), to.clone()));
        }
    }
    for ((fl, tl), set) in pairs.iter().rev() {
        let arrow = if tl > fl { "UP" } else { "->" };
        let list: Vec<String> = set.iter().map(|(f, t)| format!("{f}->{t}")).collect();
        out.push_str(&format!(
            "{} {arrow} {}: {}\n",
            LAYERS[*fl].0,
            LAYERS[*tl].0,
            list.join(" ")
        ));
    }
    out
}

/// Every library module lives in the folder of its layer (`src/storage/store/`), so the layers
/// show in the tree; the CLI and the fuzzing harness stay at the top of `src/`.
#[test]
fn every_module_sits_in_the_folder_of_its_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        let Some(top) = module.first() else { continue };
        let Some((_, layer)) = layer_of(top) else {
            continue;
        };
        let folder = folder_of(&src, file);
        let expected = (layer != "cli").then(|| layer.to_owned());
        if folder != expected {
            wrong.push(format!(
                "{}: module {top} belongs in src/{}",
                file.strip_prefix(&src).expect("under src").display(),
                expected.as_deref().unwrap_or("")
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn imports_go_down_the_layers_without_cycles() {
    let (edges, modules) = imports();
    if std::env::var_os("CUSTODY_PRINT_LAYERS").is_some() {
        print!("{}", graph(&edges));
    }
    let problems = problems(&edges, &modules);
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_check_finds_an_upward_import_and_a_cycle() {
    let m = |s: &str| s.split("::").map(str::to_owned).collect::<Vec<_>>();
    let modules: BTreeSet<Vec<String>> = ["store", "verify", "sign", "sign::a", "sign::b"]
        .iter()
        .map(|s| m(s))
        .collect();
    let edge = |from: &str, to: &str, at: &str| Edge {
        from: m(from),
        to: m(to),
        at: at.to_owned(),
    };
    let edges = [
        edge("store", "verify", "src/store/mod.rs:3"),
        edge("sign::a", "sign::b", "src/sign/a.rs:1"),
        edge("sign::b", "sign::a", "src/sign/b.rs:2"),
        edge("sign", "sign::a", "src/sign/mod.rs:9"),
    ];
    let found = problems(&edges, &modules);
    assert_eq!(
        found,
        [
            "src/store/mod.rs:3: store (storage) imports verify from a higher layer (decisions)",
            "files of sign::a, sign::b import each other: src/sign/a.rs:1, src/sign/b.rs:2",
        ]
    );
    assert_eq!(
        paths_after("use crate::{a::b, c::{d, e}};\nx(crate::f::g())", "crate::"),
        [(m("a::b"), 1), (m("c"), 1), (m("f::g"), 2)]
    );
}
