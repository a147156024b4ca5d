// long file: the checker, its rules and its own tests, which read best together
//! Architecture rules, checked by reading the source with `syn`:
//!
//! - no import cycle between the files of src/;
//! - no file names an item of a module in a higher layer (`LAYERS` below);
//! - no .rs file in src/ or tests/ is longer than `MAX_LINES` unless its first line says why.
//!
//! File A depends on file B when A names an item that B defines: in a `use`, or in a path in a
//! type, an expression, a pattern or the tokens of a macro call. Names are resolved much as rustc
//! does: `crate::`, `self::`, `super::`, names in scope in the module, globs, and `use`
//! re-exports followed to the file that defines the item. Declaring `mod child;` is no
//! dependency, and `#[cfg(test)]` items are skipped. Not seen: `macro_rules!` macros (their
//! scope is textual), and what macros expand to.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};
use syn::{Attribute, Ident, Item, UseTree};

/// Layers, lowest first: a file may name items of its own layer and lower ones, never of a higher
/// one. A file's module is the first segment of its path under src/ (`store` for
/// src/store/sql.rs); `main` is src/main.rs; src/lib.rs only declares modules and is in none.
/// Every top-level module must be on one of these lines: a new module is one more name on one.
const LAYERS: &[(u32, &[&str])] = &[
    (0, &["domain", "clock", "config"]),
    (1, &["store", "reports", "tokens", "stripe"]),
    (2, &["services"]),
    (3, &["http"]),
    (4, &["routes"]),
    (5, &["startup", "telemetry"]),
    (6, &["main"]),
];

/// The most lines a .rs file in src/ or tests/ may have, unless its first line is
/// `// long file: <reason>`.
const MAX_LINES: usize = 600;

#[test]
fn no_import_cycle_between_files() {
    let tree = Tree::from_disk();
    let edges = tree.edges();
    let report: Vec<String> = cycles(&tree, &edges)
        .iter()
        .map(|cycle| {
            let names: Vec<&str> = cycle.iter().map(|&f| tree.files[f].as_str()).collect();
            let mut text = format!("cycle between {} files: {}", cycle.len(), names.join(", "));
            for ((from, to), via) in &edges {
                if cycle.contains(from) && cycle.contains(to) {
                    let (from, to) = (&tree.files[*from], &tree.files[*to]);
                    text.push_str(&format!("\n    {from} -> {to}: {via}"));
                }
            }
            text
        })
        .collect();
    fail_if_any(
        "import cycles between files of src/ (break one edge of each)",
        &report,
    );
}

#[test]
fn no_file_depends_on_a_higher_layer() {
    let problems = layer_problems(&Tree::from_disk(), LAYERS);
    fail_if_any(
        "layer rule broken (LAYERS in tests/architecture.rs)",
        &problems,
    );
}

#[test]
fn no_file_is_too_long_without_a_reason() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    for dir in ["src", "tests"] {
        for path in rust_files(&root.join(dir)) {
            let text = std::fs::read_to_string(&path).unwrap();
            if let Some(lines) = too_long(&text, MAX_LINES) {
                let name = path.strip_prefix(root).unwrap().display();
                problems.push(format!(
                    "{name}: {lines} lines (at most {MAX_LINES}): split it, or make its first line \
                     `// long file: <reason>`"
                ));
            }
        }
    }
    fail_if_any("files too long", &problems);
}

fn fail_if_any(what: &str, problems: &[String]) {
    assert!(problems.is_empty(), "{what}:\n\n{}\n", problems.join("\n"));
}

/// What a path leads to: a module, or an item and the file that defines it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Module(usize),
    Item(usize),
}

/// A module: a file, or a `mod name { ... }` inside one.
#[derive(Default)]
struct Module {
    file: usize,
    parent: Option<usize>,
    /// The crate's root module.
    root: usize,
    /// Where the files of its `mod child;` declarations are.
    dir: String,
    /// Items it defines (those in function bodies count as the module's).
    items: BTreeSet<String>,
    children: HashMap<String, usize>,
    /// Names it imports, each with the path(s) it stands for.
    uses: HashMap<String, Vec<Vec<String>>>,
    globs: Vec<Vec<String>>,
}

/// A path written in a module, and its line.
struct Ref {
    module: usize,
    path: Vec<String>,
    line: usize,
}

/// The modules of the library (src/lib.rs) and the binary (src/main.rs), and every path in them.
#[derive(Default)]
struct Tree {
    files: Vec<String>,
    modules: Vec<Module>,
    refs: Vec<Ref>,
    /// Crates by name: the library, as the binary names it.
    externs: HashMap<String, usize>,
}

impl Tree {
    fn from_disk() -> Tree {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        Tree::build(|path| std::fs::read_to_string(root.join(path)).ok())
    }

    /// Reads the crate through `read`, which gets paths relative to the package root.
    fn build(read: impl Fn(&str) -> Option<String>) -> Tree {
        let mut tree = Tree::default();
        let lib = tree
            .add_file("src/lib.rs", None, "src", &read)
            .expect("src/lib.rs");
        tree.externs
            .insert(env!("CARGO_PKG_NAME").replace('-', "_"), lib);
        tree.add_file("src/main.rs", None, "src", &read);
        tree
    }

    fn add_file(
        &mut self,
        path: &str,
        parent: Option<usize>,
        dir: &str,
        read: &dyn Fn(&str) -> Option<String>,
    ) -> Option<usize> {
        let text = read(path)?;
        let ast = syn::parse_file(&text).unwrap_or_else(|err| panic!("{path}: {err}"));
        self.files.push(path.to_owned());
        let file = self.files.len() - 1;
        Some(self.add_module(file, parent, dir.to_owned(), &ast.items, read))
    }

    fn add_module(
        &mut self,
        file: usize,
        parent: Option<usize>,
        dir: String,
        items: &[Item],
        read: &dyn Fn(&str) -> Option<String>,
    ) -> usize {
        let module = self.modules.len();
        let root = parent.map_or(module, |p| self.modules[p].root);
        self.modules.push(Module {
            file,
            parent,
            root,
            dir,
            ..Module::default()
        });
        let mut collector = Collector {
            tree: self,
            module,
            read,
        };
        for item in items {
            collector.visit_item(item);
        }
        module
    }

    /// Where `path`, written in module `module`, leads; `None` outside the crate (or a local).
    fn resolve(&self, module: usize, path: &[String], depth: u32) -> Option<Target> {
        let (first, rest) = path.split_first()?;
        if depth > 16 {
            return None;
        }
        let start = match first.as_str() {
            "crate" => Target::Module(self.modules[module].root),
            "self" => Target::Module(module),
            "super" => Target::Module(self.modules[module].parent?),
            "::" => {
                let (krate, rest) = rest.split_first()?;
                return self.walk(Target::Module(*self.externs.get(krate)?), rest, depth);
            }
            name => match self.lookup(module, name, rest.is_empty(), depth) {
                Some(target) => target,
                None => Target::Module(*self.externs.get(name)?),
            },
        };
        self.walk(start, rest, depth)
    }

    /// Follows the rest of a path from `at`; stops at an item (`Type::method`, `Enum::Variant`).
    fn walk(&self, mut at: Target, rest: &[String], depth: u32) -> Option<Target> {
        for (i, segment) in rest.iter().enumerate() {
            let Target::Module(module) = at else { break };
            at = match segment.as_str() {
                "self" => at,
                "super" => Target::Module(self.modules[module].parent?),
                // Not found: made by a macro in that module (the domain's named enums).
                name => self
                    .lookup(module, name, i + 1 == rest.len(), depth)
                    .unwrap_or(Target::Item(self.modules[module].file)),
            };
        }
        Some(at)
    }

    /// What `name` means in `module`: an item or module there, else an import, else a glob's.
    /// A module and an item may share a name: the last segment of a path prefers the item.
    fn lookup(&self, module: usize, name: &str, last: bool, depth: u32) -> Option<Target> {
        let m = &self.modules[module];
        let mut found: Vec<Target> = m
            .items
            .contains(name)
            .then_some(Target::Item(m.file))
            .into_iter()
            .collect();
        found.extend(m.children.get(name).map(|&child| Target::Module(child)));
        for path in m.uses.get(name).into_iter().flatten() {
            found.extend(self.resolve(module, path, depth + 1));
        }
        let preferred = found.iter().find(|t| matches!(t, Target::Item(_)) == last);
        if let Some(&target) = preferred.or(found.first()) {
            return Some(target);
        }
        m.globs
            .iter()
            .find_map(|glob| match self.resolve(module, glob, depth + 1)? {
                Target::Module(from) => self.lookup(from, name, last, depth + 1),
                Target::Item(_) => None,
            })
    }

    /// Each pair of different files where the first names an item the second defines, with the
    /// first such path.
    fn edges(&self) -> BTreeMap<(usize, usize), String> {
        let mut edges = BTreeMap::new();
        for r in &self.refs {
            let from = self.modules[r.module].file;
            if let Some(Target::Item(to)) = self.resolve(r.module, &r.path, 0)
                && to != from
            {
                let via = format!("`{}` on line {}", r.path.join("::"), r.line);
                edges.entry((from, to)).or_insert(via);
            }
        }
        edges
    }
}

/// Records, for one module, what it defines and imports and every path written in it.
struct Collector<'a> {
    tree: &'a mut Tree,
    module: usize,
    read: &'a dyn Fn(&str) -> Option<String>,
}

impl Collector<'_> {
    fn refer(&mut self, path: Vec<String>, line: usize) {
        self.tree.refs.push(Ref {
            module: self.module,
            path,
            line,
        });
    }

    fn add_child(&mut self, item: &syn::ItemMod) {
        let name = item.ident.to_string();
        let dir = format!("{}/{name}", self.tree.modules[self.module].dir);
        let child = match &item.content {
            Some((_, items)) => {
                let file = self.tree.modules[self.module].file;
                Some(
                    self.tree
                        .add_module(file, Some(self.module), dir.clone(), items, self.read),
                )
            }
            None => [format!("{dir}.rs"), format!("{dir}/mod.rs")]
                .iter()
                .find_map(|path| self.tree.add_file(path, Some(self.module), &dir, self.read)),
        };
        let child = child.unwrap_or_else(|| panic!("no {dir}.rs or {dir}/mod.rs for `mod {name}`"));
        self.tree.modules[self.module].children.insert(name, child);
    }

    fn add_use(&mut self, tree: &UseTree, prefix: &mut Vec<String>) {
        match tree {
            UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.add_use(&p.tree, prefix);
                prefix.pop();
            }
            UseTree::Name(n) => self.import(prefix, &n.ident, &n.ident),
            UseTree::Rename(r) => self.import(prefix, &r.ident, &r.rename),
            UseTree::Glob(_) => self.tree.modules[self.module].globs.push(prefix.clone()),
            UseTree::Group(g) => g.items.iter().for_each(|tree| self.add_use(tree, prefix)),
        }
    }

    fn import(&mut self, prefix: &[String], ident: &Ident, alias: &Ident) {
        let mut path = prefix.to_vec();
        if ident != "self" {
            path.push(ident.to_string());
        }
        let alias = if alias == "self" {
            path.last().cloned().unwrap_or_default()
        } else {
            alias.to_string()
        };
        if alias != "_" {
            let uses = &mut self.tree.modules[self.module].uses;
            uses.entry(alias).or_default().push(path.clone());
        }
        self.refer(path, ident.span().start().line);
    }

    /// Finds the paths (`a::b::c`) in a macro call's tokens.
    fn scan(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            let after_dot =
                i > 0 && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == '.');
            match &tokens[i] {
                TokenTree::Group(group) => self.scan(group.stream()),
                TokenTree::Ident(first) if !after_dot => {
                    let mut path = vec![first.to_string()];
                    while let [
                        TokenTree::Punct(a),
                        TokenTree::Punct(b),
                        TokenTree::Ident(next),
                        ..,
                    ] = &tokens[i + 1..]
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        path.push(next.to_string());
                        i += 3;
                    }
                    self.refer(path, first.span().start().line);
                }
                _ => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, item: &'ast Item) {
        let (name, attrs) = name_and_attrs(item);
        if attrs.iter().any(is_cfg_test) {
            return;
        }
        match item {
            Item::Mod(m) => self.add_child(m),
            Item::Use(u) => {
                let mut prefix = Vec::new();
                if u.leading_colon.is_some() {
                    prefix.push("::".to_owned());
                }
                self.add_use(&u.tree, &mut prefix);
            }
            // A `macro_rules!` definition: patterns and templates, not code of this module.
            Item::Macro(m) if m.ident.is_some() => {}
            _ => {
                if let Some(name) = name {
                    self.tree.modules[self.module]
                        .items
                        .insert(name.to_string());
                }
                visit::visit_item(self, item);
            }
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let mut segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if path.leading_colon.is_some() {
            segments.insert(0, "::".to_owned());
        }
        let line = path
            .segments
            .first()
            .map_or(0, |s| s.ident.span().start().line);
        self.refer(segments, line);
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.scan(mac.tokens.clone());
        visit::visit_macro(self, mac);
    }
}

fn name_and_attrs(item: &Item) -> (Option<&Ident>, &[Attribute]) {
    match item {
        Item::Const(i) => (Some(&i.ident), &i.attrs),
        Item::Enum(i) => (Some(&i.ident), &i.attrs),
        Item::Fn(i) => (Some(&i.sig.ident), &i.attrs),
        Item::Static(i) => (Some(&i.ident), &i.attrs),
        Item::Struct(i) => (Some(&i.ident), &i.attrs),
        Item::Trait(i) => (Some(&i.ident), &i.attrs),
        Item::TraitAlias(i) => (Some(&i.ident), &i.attrs),
        Item::Type(i) => (Some(&i.ident), &i.attrs),
        Item::Union(i) => (Some(&i.ident), &i.attrs),
        Item::Mod(i) => (None, &i.attrs),
        Item::Use(i) => (None, &i.attrs),
        Item::Impl(i) => (None, &i.attrs),
        Item::Macro(i) => (None, &i.attrs),
        Item::ExternCrate(i) => (None, &i.attrs),
        Item::ForeignMod(i) => (None, &i.attrs),
        _ => (None, &[]),
    }
}

fn is_cfg_test(attr: &Attribute) -> bool {
    attr.path().is_ident("cfg") && attr.parse_args::<Ident>().is_ok_and(|arg| arg == "test")
}

/// The groups of files that depend on each other, with their files sorted by name.
fn cycles(tree: &Tree, edges: &BTreeMap<(usize, usize), String>) -> Vec<Vec<usize>> {
    let mut next = vec![Vec::new(); tree.files.len()];
    for &(from, to) in edges.keys() {
        next[from].push(to);
    }
    let mut cycles = strongly_connected(&next);
    cycles.retain(|component| component.len() > 1);
    for component in &mut cycles {
        component.sort_by_key(|&f| &tree.files[f]);
    }
    cycles.sort_by_key(|c| &tree.files[c[0]]);
    cycles
}

/// Tarjan's strongly connected components of the graph with edges `next[v]` out of each `v`.
fn strongly_connected(next: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct Tarjan<'a> {
        next: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        stack: Vec<usize>,
        found: Vec<Vec<usize>>,
    }
    fn connect(t: &mut Tarjan, v: usize, count: &mut usize) {
        (t.index[v], t.low[v]) = (Some(*count), *count);
        *count += 1;
        t.stack.push(v);
        let next = t.next;
        for &w in &next[v] {
            match t.index[w] {
                None => {
                    connect(t, w, count);
                    t.low[v] = t.low[v].min(t.low[w]);
                }
                Some(index) if t.stack.contains(&w) => t.low[v] = t.low[v].min(index),
                Some(_) => {}
            }
        }
        if t.index[v] == Some(t.low[v]) {
            let at = t.stack.iter().rposition(|&w| w == v).unwrap();
            let component = t.stack.split_off(at);
            t.found.push(component);
        }
    }
    let n = next.len();
    let (index, low) = (vec![None; n], vec![0; n]);
    let mut t = Tarjan {
        next,
        index,
        low,
        stack: Vec::new(),
        found: Vec::new(),
    };
    let mut count = 0;
    for v in 0..n {
        if t.index[v].is_none() {
            connect(&mut t, v, &mut count);
        }
    }
    t.found
}

/// A file's top-level module: `store` for src/store/sql.rs, `main` for src/main.rs.
fn top_module(file: &str) -> &str {
    let first = file
        .trim_start_matches("src/")
        .split('/')
        .next()
        .unwrap_or(file);
    first.trim_end_matches(".rs")
}

fn layer_problems(tree: &Tree, layers: &[(u32, &[&str])]) -> Vec<String> {
    let layer_of = |file: &str| {
        let module = top_module(file);
        layers
            .iter()
            .find(|(_, modules)| modules.contains(&module))
            .map(|&(layer, _)| layer)
    };
    let files = tree.files.iter().filter(|f| *f != "src/lib.rs");
    let unknown: BTreeSet<&str> = files
        .filter(|f| layer_of(f).is_none())
        .map(|f| top_module(f))
        .collect();
    let mut problems: Vec<String> = unknown
        .iter()
        .map(|m| format!("module `{m}` is in no layer: add it to the layer table (LAYERS)"))
        .collect();
    for ((from, to), via) in tree.edges() {
        let (from, to) = (&tree.files[from], &tree.files[to]);
        if let (Some(low), Some(high)) = (layer_of(from), layer_of(to))
            && low < high
        {
            problems.push(format!(
                "{from} (layer {low}) depends on {to} (layer {high}): {via}"
            ));
        }
    }
    problems
}

/// The line count of a file over `max` lines whose first line gives no reason to be.
fn too_long(text: &str, max: usize) -> Option<usize> {
    let lines = text.lines().count();
    let first = text.lines().next().unwrap_or_default();
    let reason = first
        .strip_prefix("// long file:")
        .map(str::trim)
        .unwrap_or_default();
    (lines > max && reason.is_empty()).then_some(lines)
}

fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The checker's own tests, on small crates held in memory.
mod checker {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> Tree {
        let files: HashMap<&str, &str> = files.iter().copied().collect();
        Tree::build(|path| files.get(path).map(|text| text.to_string()))
    }

    fn edges(tree: &Tree) -> Vec<String> {
        let name = |f: usize| tree.files[f].trim_start_matches("src/").to_owned();
        tree.edges()
            .keys()
            .map(|&(from, to)| format!("{} -> {}", name(from), name(to)))
            .collect()
    }

    fn cycle_files(tree: &Tree) -> Vec<Vec<&str>> {
        let cycles = cycles(tree, &tree.edges());
        cycles
            .iter()
            .map(|c| c.iter().map(|&f| tree.files[f].as_str()).collect())
            .collect()
    }

    #[test]
    fn finds_a_cycle_through_three_files() {
        let tree = tree(&[
            ("src/lib.rs", "mod a; mod b; mod c; mod d;"),
            ("src/a.rs", "use crate::b::B; pub struct A;"),
            ("src/b.rs", "pub struct B(pub super::c::C);"),
            ("src/c.rs", "pub struct C; fn f() { let _ = crate::a::A; }"),
            ("src/d.rs", "use crate::a::A;"),
        ]);
        assert_eq!(
            edges(&tree),
            [
                "a.rs -> b.rs",
                "b.rs -> c.rs",
                "c.rs -> a.rs",
                "d.rs -> a.rs"
            ]
        );
        assert_eq!(cycle_files(&tree), [["src/a.rs", "src/b.rs", "src/c.rs"]]);
    }

    #[test]
    fn follows_re_exports_to_the_defining_file() {
        let tree = tree(&[
            ("src/lib.rs", "pub mod store; mod user;"),
            (
                "src/store/mod.rs",
                "mod sql; mod quiet; pub use sql::Store; pub struct Error;",
            ),
            (
                "src/store/sql.rs",
                "pub struct Store; fn f() -> super::Error { todo!() }",
            ),
            ("src/store/quiet.rs", ""),
            (
                "src/user.rs",
                "use crate::store::{self, Store}; fn f(e: store::Error) {}",
            ),
            (
                "src/main.rs",
                "fn main() { let _ = tollgate::store::Store; }",
            ),
        ]);
        let expected = [
            "store/mod.rs -> store/sql.rs",
            "store/sql.rs -> store/mod.rs",
            "user.rs -> store/mod.rs",
            "user.rs -> store/sql.rs",
            "main.rs -> store/sql.rs",
        ];
        assert_eq!(edges(&tree), expected);
        assert_eq!(
            cycle_files(&tree),
            [["src/store/mod.rs", "src/store/sql.rs"]]
        );
    }

    #[test]
    fn skips_cfg_test_and_sees_paths_in_macros() {
        let tree = tree(&[
            ("src/lib.rs", "mod a; mod b; mod c;"),
            (
                "src/a.rs",
                "pub struct A; #[cfg(test)] mod tests { use crate::b::B; }",
            ),
            (
                "src/b.rs",
                "pub struct B; fn f() { println!(\"{:?}\", crate::a::A); }",
            ),
            (
                "src/c.rs",
                "use crate::b::*; fn f() { std::println!(\"{}\", x.B); }",
            ),
        ]);
        assert_eq!(edges(&tree), ["b.rs -> a.rs"]);
        assert!(cycle_files(&tree).is_empty());
    }

    #[test]
    fn reports_unknown_modules_and_dependencies_on_higher_layers() {
        let tree = tree(&[
            ("src/lib.rs", "mod low; mod high; mod other;"),
            ("src/low.rs", "pub struct Low(crate::high::High);"),
            ("src/high.rs", "pub struct High;"),
            ("src/other.rs", "use crate::low::Low;"),
        ]);
        let problems = layer_problems(&tree, &[(0, &["low"]), (1, &["high"])]);
        let expected = [
            "module `other` is in no layer: add it to the layer table (LAYERS)",
            "src/low.rs (layer 0) depends on src/high.rs (layer 1): `crate::high::High` on line 1",
        ];
        assert_eq!(problems, expected);
    }

    #[test]
    fn long_files_need_a_reason_on_their_first_line() {
        assert_eq!(too_long("a\nb\nc\n", 2), Some(3));
        assert_eq!(too_long("// long file: generated\nb\nc\n", 2), None);
        assert_eq!(too_long("// long file:  \nb\nc\n", 2), Some(3));
        assert_eq!(too_long("a\nb\n", 2), None);
    }
}
