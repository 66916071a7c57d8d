//! What a package's `Cargo.toml` tells the indexer: its crate name and edition, the
//! crates Cargo builds from it (targets, declared or discovered the way Cargo
//! discovers them) and the crates its code may name (dependencies, renamed or not,
//! with the version each asks for). Read with the `toml` crate; fields inherited
//! from the workspace (`edition.workspace = true`, `dep = { workspace = true }`)
//! are taken from the workspace root's manifest.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use toml::{Table, Value};

/// The crates Rust code can always name, whatever the manifest says.
pub const BUILTIN_CRATES: &[&str] = &["std", "core", "alloc", "proc_macro", "test"];

/// What Cargo builds a target as.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord, Hash)]
pub enum TargetKind {
    /// The library (`src/lib.rs` or `[lib] path`).
    Lib,
    /// A binary.
    Bin,
    /// An integration test.
    Test,
    /// An example.
    Example,
    /// A benchmark.
    Bench,
    /// The build script.
    Build,
}

/// A crate Cargo builds from the package.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Target {
    /// What it is built as.
    pub kind: TargetKind,
    /// Its root file, relative to the package directory, `/`-separated.
    pub path: String,
}

/// Which table a dependency is declared in (a bit each, so one name declared in
/// several tables keeps them all).
pub mod dep_kind {
    /// `[dependencies]` (and `[target.'cfg(…)'.dependencies]`).
    pub const NORMAL: u8 = 1;
    /// `[dev-dependencies]`: tests, examples, benches, and `#[cfg(test)]` code.
    pub const DEV: u8 = 2;
    /// `[build-dependencies]`: the build script.
    pub const BUILD: u8 = 4;
    /// Not declared: the package's own library, which its other targets name.
    pub const OWN_LIB: u8 = 8;
    /// A dependency outside the workspace whose library name could not be read (its
    /// sources are not in the cargo registry): the name is its key's, which may
    /// not be what code calls it.
    pub const UNVERIFIED: u8 = 16;
}

/// A crate the package's code may name.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Dependency {
    /// The name code uses (`-` turned into `_`; the key, which `package = …`
    /// renames).
    pub name: String,
    /// The package it is (`package = …`, else the key).
    pub package: String,
    /// Whether `package = …` renames it (then code names it by the key; otherwise
    /// by the library name of the package it is).
    pub renamed: bool,
    /// The version requirement, if one is given.
    pub version: Option<String>,
    /// Its directory, for a `path` dependency.
    pub path: Option<PathBuf>,
    /// The tables declaring it ([`dep_kind`] bits).
    pub kinds: u8,
}

/// A package's manifest, as far as the indexer cares.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Manifest {
    /// The package name (`[package] name`).
    pub package: String,
    /// Its version (`0.0.0` when not given).
    pub version: String,
    /// The edition its code is written in.
    pub edition: u16,
    /// The library's crate name (`[lib] name`, else the package name with `-` as
    /// `_`).
    pub crate_name: String,
    /// Whether the library is a proc-macro crate.
    pub proc_macro: bool,
    /// The dependencies.
    pub dependencies: Vec<Dependency>,
    /// The target tables and discovery switches, resolved against the files by
    /// [`targets`](Self::targets).
    layout: Layout,
    /// Whether the package has a real manifest (a directory or file without one is
    /// indexed with Cargo's defaults, and any crate name is accepted there).
    pub declared: bool,
}

/// The parts of a manifest that decide targets.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
struct Layout {
    /// `[lib] path`, if given.
    lib_path: Option<String>,
    /// The one file of a crate that is a lone file (`rustc file.rs`).
    lone_file: Option<String>,
    /// Whether a `[lib]` table exists.
    lib_declared: bool,
    /// Explicit `[[bin]]`, `[[test]]`, `[[example]]`, `[[bench]]`: kind, name, path.
    explicit: Vec<(TargetKind, Option<String>, Option<String>)>,
    /// `autobins`, `autotests`, `autoexamples`, `autobenches`.
    auto: [bool; 4],
    /// The build script's path: `Some` unless `build = false`.
    build: Option<String>,
}

/// A manifest that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The manifest.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not TOML.
    #[error("{path} is not valid TOML ({source}); its package is indexed with Cargo's defaults")]
    Parse {
        /// The manifest.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
}

impl Manifest {
    /// Cargo's defaults for a package called `name` with no manifest.
    pub fn undeclared(name: &str) -> Manifest {
        Manifest {
            package: name.to_owned(),
            version: "0.0.0".into(),
            edition: 2021,
            crate_name: name.replace('-', "_"),
            proc_macro: false,
            dependencies: Vec::new(),
            layout: Layout { auto: [true; 4], build: Some("build.rs".into()), ..Layout::default() },
            declared: false,
        }
    }

    /// A crate that is one file, `file`, as `rustc file.rs` builds it.
    pub fn lone_file(file: &str) -> Manifest {
        let mut manifest = Self::undeclared(file.trim_end_matches(".rs"));
        manifest.layout.lone_file = Some(file.to_owned());
        manifest
    }

    /// Reads `dir/Cargo.toml`; `workspace` is the workspace root's manifest (as a
    /// table) for inherited fields. `Ok(None)` when the manifest has no
    /// `[package]` (a virtual workspace root).
    pub fn read(dir: &Path, workspace: Option<&Table>) -> Result<Option<Manifest>, ManifestError> {
        let path = dir.join("Cargo.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|source| ManifestError::Read { path: path.clone(), source })?;
        let table: Table = toml::from_str(&text)
            .map_err(|source| ManifestError::Parse { path, source: Box::new(source) })?;
        Ok(Self::from_table(dir, &table, workspace))
    }

    /// The manifest of `table`, the parsed `Cargo.toml` of the package in `dir`.
    pub fn from_table(dir: &Path, table: &Table, workspace: Option<&Table>) -> Option<Manifest> {
        let package = table.get("package")?.as_table()?;
        let name = package.get("name")?.as_str()?.to_owned();
        let inherited = |field: &str| -> Option<Value> {
            match package.get(field)? {
                Value::Table(t) if t.get("workspace").and_then(Value::as_bool) == Some(true) => {
                    workspace?.get("workspace")?.get("package")?.get(field).cloned()
                }
                value => Some(value.clone()),
            }
        };
        let edition =
            inherited("edition").and_then(|v| v.as_str().and_then(|e| e.parse().ok())).unwrap_or(2015);
        let version =
            inherited("version").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or("0.0.0".into());
        let lib = table.get("lib").and_then(Value::as_table);
        let crate_name =
            lib.and_then(|lib| lib.get("name")).and_then(Value::as_str).unwrap_or(&name).replace('-', "_");
        let proc_macro = lib
            .and_then(|lib| lib.get("proc-macro").or_else(|| lib.get("proc_macro")))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let auto = |key: &str| package.get(key).and_then(Value::as_bool).unwrap_or(true);
        let mut explicit = Vec::new();
        for (kind, key) in [
            (TargetKind::Bin, "bin"),
            (TargetKind::Test, "test"),
            (TargetKind::Example, "example"),
            (TargetKind::Bench, "bench"),
        ] {
            for target in table.get(key).and_then(Value::as_array).into_iter().flatten() {
                let field = |f: &str| target.get(f).and_then(Value::as_str).map(str::to_owned);
                explicit.push((kind, field("name"), field("path")));
            }
        }
        let build = match package.get("build") {
            Some(Value::Boolean(false)) => None,
            Some(Value::String(path)) => Some(path.clone()),
            _ => Some("build.rs".into()),
        };
        let layout = Layout {
            lib_path: lib.and_then(|lib| lib.get("path")).and_then(Value::as_str).map(str::to_owned),
            lone_file: None,
            lib_declared: lib.is_some(),
            explicit,
            auto: [auto("autobins"), auto("autotests"), auto("autoexamples"), auto("autobenches")],
            build,
        };
        let mut manifest = Manifest {
            package: name,
            version,
            edition,
            crate_name,
            proc_macro,
            dependencies: Vec::new(),
            layout,
            declared: true,
        };
        let workspace_deps = workspace.and_then(|w| w.get("workspace")?.get("dependencies")?.as_table());
        let workspace_dir = workspace.and_then(|w| w.get("__dir")?.as_str().map(PathBuf::from));
        fn dependency_tables<'t>(holder: &'t Table, tables: &mut Vec<(&'t Table, u8)>) {
            for (key, kind) in [
                ("dependencies", dep_kind::NORMAL),
                ("dev-dependencies", dep_kind::DEV),
                ("dev_dependencies", dep_kind::DEV),
                ("build-dependencies", dep_kind::BUILD),
                ("build_dependencies", dep_kind::BUILD),
            ] {
                if let Some(deps) = holder.get(key).and_then(Value::as_table) {
                    tables.push((deps, kind));
                }
            }
        }
        let mut tables = Vec::new();
        dependency_tables(table, &mut tables);
        for platform in table.get("target").and_then(Value::as_table).into_iter().flat_map(|t| t.values()) {
            if let Some(platform) = platform.as_table() {
                dependency_tables(platform, &mut tables);
            }
        }
        for (deps, kind) in tables {
            for (key, spec) in deps {
                let from_workspace = spec.get("workspace").and_then(Value::as_bool) == Some(true);
                let (spec, base) = match (from_workspace, workspace_deps.and_then(|w| w.get(key))) {
                    (true, Some(shared)) => (shared, workspace_dir.as_deref().unwrap_or(dir)),
                    _ => (spec, dir),
                };
                manifest.add_dependency(key, spec, base, kind);
            }
        }
        Some(manifest)
    }

    fn add_dependency(&mut self, key: &str, spec: &Value, base: &Path, kind: u8) {
        let renamed = spec.get("package").is_some();
        let (package, version, path) = match spec {
            Value::String(version) => (key.to_owned(), Some(version.clone()), None),
            Value::Table(spec) => (
                spec.get("package").and_then(Value::as_str).unwrap_or(key).to_owned(),
                spec.get("version").and_then(Value::as_str).map(str::to_owned),
                spec.get("path").and_then(Value::as_str).map(|path| base.join(path)),
            ),
            _ => (key.to_owned(), None, None),
        };
        let name = key.replace('-', "_");
        match self.dependencies.iter_mut().find(|dep| dep.name == name) {
            Some(known) => known.kinds |= kind,
            None => self.dependencies.push(Dependency { name, package, renamed, version, path, kinds: kind }),
        }
    }

    /// The targets Cargo builds, given the package's `.rs` files (relative paths):
    /// the declared ones, then the discovered ones (`src/lib.rs`, `src/main.rs`,
    /// `src/bin/*.rs`, `src/bin/*/main.rs`, `tests/*.rs`, `tests/*/main.rs`, the
    /// same in `examples/` and `benches/`, `build.rs`) unless discovery is turned
    /// off. Only files that exist; each path once.
    pub fn targets(&self, files: &[String]) -> Vec<Target> {
        let exists = |path: &str| files.iter().any(|file| file == path);
        let mut targets: Vec<Target> = Vec::new();
        if let Some(file) = self.layout.lone_file.as_ref().filter(|file| exists(file)) {
            targets.push(Target { kind: TargetKind::Lib, path: file.clone() });
            return targets;
        }
        let add = |kind: TargetKind, path: String, targets: &mut Vec<Target>| {
            let path = normalize(&path);
            if exists(&path) && !targets.iter().any(|t| t.path == path) {
                targets.push(Target { kind, path });
            }
        };
        let lib = self.layout.lib_path.clone().unwrap_or_else(|| "src/lib.rs".into());
        add(TargetKind::Lib, lib, &mut targets);
        for (kind, name, path) in &self.layout.explicit {
            let path = match (path, name) {
                (Some(path), _) => path.clone(),
                (None, Some(name)) => match kind {
                    TargetKind::Bin if name.replace('-', "_") == self.crate_name || *name == self.package => {
                        "src/main.rs".into()
                    }
                    TargetKind::Bin if exists(&format!("src/bin/{name}/main.rs")) => {
                        format!("src/bin/{name}/main.rs")
                    }
                    TargetKind::Bin => format!("src/bin/{name}.rs"),
                    _ => {
                        let dir = match kind {
                            TargetKind::Test => "tests",
                            TargetKind::Example => "examples",
                            _ => "benches",
                        };
                        if exists(&format!("{dir}/{name}/main.rs")) {
                            format!("{dir}/{name}/main.rs")
                        } else {
                            format!("{dir}/{name}.rs")
                        }
                    }
                },
                (None, None) => continue,
            };
            add(*kind, path, &mut targets);
        }
        let [bins, tests, examples, benches] = self.layout.auto;
        let discovered = [
            (bins, TargetKind::Bin, "src/bin"),
            (tests, TargetKind::Test, "tests"),
            (examples, TargetKind::Example, "examples"),
            (benches, TargetKind::Bench, "benches"),
        ];
        if bins {
            add(TargetKind::Bin, "src/main.rs".into(), &mut targets);
        }
        for (on, kind, dir) in discovered {
            if !on {
                continue;
            }
            for file in files {
                let Some(rest) = file.strip_prefix(dir).and_then(|rest| rest.strip_prefix('/')) else {
                    continue;
                };
                let parts: Vec<&str> = rest.split('/').collect();
                match parts.as_slice() {
                    [name] if name.ends_with(".rs") => add(kind, file.clone(), &mut targets),
                    [_, "main.rs"] => add(kind, file.clone(), &mut targets),
                    _ => {}
                }
            }
        }
        if let Some(build) = &self.layout.build {
            add(TargetKind::Build, build.clone(), &mut targets);
        }
        targets
    }
}

/// Resolves `.` and `..` and strips a leading `./`.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

/// Reads the manifest at `dir/Cargo.toml` as a table, remembering its directory
/// (for `path` dependencies it declares for the workspace).
pub fn read_table(dir: &Path) -> Option<Table> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
    let mut table: Table = toml::from_str(&text).ok()?;
    table.insert("__dir".into(), Value::String(dir.to_string_lossy().into_owned()));
    Some(table)
}

/// Whether `version` satisfies the requirement `req` (Cargo's caret default for a
/// bare version). An unparsable requirement or version is satisfied.
pub fn satisfies(version: &str, req: Option<&str>) -> bool {
    let (Ok(version), Some(Ok(req))) = (semver::Version::parse(version), req.map(semver::VersionReq::parse))
    else {
        return true;
    };
    req.matches(&version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> Manifest {
        let table: Table = toml::from_str(text).expect("valid TOML");
        Manifest::from_table(Path::new("/ws/p"), &table, None).expect("a package")
    }

    #[test]
    fn targets_follow_declarations_and_discovery() {
        let m = manifest(
            "[package]\nname = \"my-tool\"\nedition = \"2021\"\nautotests = false\n[lib]\npath = \"lib/root.rs\"\n[[bin]]\nname = \"other\"\n[[test]]\nname = \"it\"\npath = \"checks/it.rs\"\n",
        );
        let files: Vec<String> = [
            "lib/root.rs",
            "src/main.rs",
            "src/bin/other.rs",
            "src/bin/dir/main.rs",
            "tests/ignored.rs",
            "checks/it.rs",
            "examples/e.rs",
            "build.rs",
        ]
        .map(String::from)
        .to_vec();
        let targets: Vec<(TargetKind, String)> =
            m.targets(&files).into_iter().map(|t| (t.kind, t.path)).collect();
        let targets: Vec<(TargetKind, &str)> = targets.iter().map(|(k, p)| (*k, p.as_str())).collect();
        assert_eq!(
            targets,
            [
                (TargetKind::Lib, "lib/root.rs"),
                (TargetKind::Bin, "src/bin/other.rs"),
                (TargetKind::Test, "checks/it.rs"),
                (TargetKind::Bin, "src/main.rs"),
                (TargetKind::Bin, "src/bin/dir/main.rs"),
                (TargetKind::Example, "examples/e.rs"),
                (TargetKind::Build, "build.rs"),
            ]
        );
        assert_eq!(m.crate_name, "my_tool");
        assert_eq!(m.edition, 2021);
    }

    #[test]
    fn dependencies_are_renamed_and_inherited() {
        let workspace: Table = toml::from_str(
            "__dir = \"/ws\"\n[workspace.package]\nedition = \"2024\"\n[workspace.dependencies]\nshared = { path = \"crates/shared\", package = \"shared-impl\" }\n",
        )
        .expect("valid TOML");
        let table: Table = toml::from_str(
            "[package]\nname = \"p\"\nedition.workspace = true\n[dependencies]\nrand = \"0.8\"\nmy-serde = { package = \"serde\", version = \"1\" }\nshared.workspace = true\n[dev-dependencies]\nrand = \"0.8\"\n[target.'cfg(unix)'.build-dependencies]\ncc = \"1\"\n",
        )
        .expect("valid TOML");
        let m = Manifest::from_table(Path::new("/ws/p"), &table, Some(&workspace)).expect("a package");
        assert_eq!(m.edition, 2024);
        let deps: Vec<(&str, &str, u8)> =
            m.dependencies.iter().map(|d| (d.name.as_str(), d.package.as_str(), d.kinds)).collect();
        assert_eq!(
            deps,
            [
                ("my_serde", "serde", 1),
                ("rand", "rand", dep_kind::NORMAL | dep_kind::DEV),
                ("shared", "shared-impl", 1),
                ("cc", "cc", 4)
            ]
        );
        assert_eq!(m.dependencies[2].path.as_deref(), Some(Path::new("/ws/crates/shared")));
        assert!(
            satisfies("0.8.5", Some("0.8")) && !satisfies("0.7.3", Some("0.8")) && satisfies("1.0.0", None)
        );
    }
}
