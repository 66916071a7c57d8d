//! Inputs: a workspace, crate or file read from disk, or the deterministic
//! real-source sample (whole crates from the cargo registry's sources, in name
//! order). Each package comes with what its `Cargo.toml` says (see `manifest.rs`):
//! the crates Cargo builds from it and the packages its dependencies are.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use super::analysis::PackageFacts;
use super::manifest::{self, Manifest, TargetKind, dep_kind};

/// One Cargo package: its files, its crate roots and its dependencies.
#[derive(Clone, Debug)]
pub struct Package {
    /// How files of this package are named (`name/path`): its crate name, with
    /// `@version` when another package of the sample has the same crate name.
    pub name: String,
    /// Where it was read from.
    pub dir: PathBuf,
    /// Relative path and text of each file.
    pub files: Vec<(String, String)>,
    /// What its manifest says.
    pub manifest: Manifest,
    /// Its crate roots: (file path, module path of the root: `crate` for the
    /// library, `crate[path]` for every other target, which Cargo builds as a
    /// crate of its own).
    pub roots: Vec<(String, String)>,
    /// The crates its code may name: (name, package index in the sample when the
    /// sample holds it, [`dep_kind`] bits). Filled by [`Sample::link`].
    pub deps: Vec<(String, Option<u32>, u8)>,
}

impl Package {
    /// A package with Cargo's defaults and no manifest (crate roots discovered as
    /// Cargo discovers them; any workspace crate may be named from it).
    pub fn new(name: &str, dir: PathBuf, files: Vec<(String, String)>) -> Package {
        Self::with_manifest(Manifest::undeclared(name), dir, files)
    }

    /// A package whose manifest is `manifest`.
    pub fn with_manifest(manifest: Manifest, dir: PathBuf, mut files: Vec<(String, String)>) -> Package {
        files.sort();
        let paths: Vec<String> = files.iter().map(|(path, _)| path.clone()).collect();
        let roots = Self::roots_of(&manifest, &paths);
        Package { name: manifest.crate_name.clone(), dir, files, manifest, roots, deps: Vec::new() }
    }

    /// The crate roots of a package with `manifest` and files `paths`: (file path,
    /// root module).
    pub fn roots_of(manifest: &Manifest, paths: &[String]) -> Vec<(String, String)> {
        manifest
            .targets(paths)
            .into_iter()
            .map(|target| {
                let module = if target.kind == TargetKind::Lib {
                    "crate".to_owned()
                } else {
                    format!("crate[{}]", target.path)
                };
                (target.path, module)
            })
            .collect()
    }

    /// The edition its code is written in.
    pub fn edition(&self) -> u16 {
        self.manifest.edition
    }

    /// What resolution needs of its manifest.
    pub fn facts(&self) -> PackageFacts {
        PackageFacts {
            edition: self.manifest.edition,
            declared: self.manifest.declared,
            unverified: self.deps.iter().any(|(_, _, kinds)| kinds & dep_kind::UNVERIFIED != 0),
        }
    }
}

/// A set of packages to index.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// The packages, in the order they were found.
    pub packages: Vec<Package>,
    /// Manifests that could not be read (their packages use Cargo's defaults).
    pub warnings: Vec<String>,
}

impl Sample {
    /// A sample of `packages`, linked.
    pub fn of(packages: Vec<Package>) -> Sample {
        let mut sample = Sample { packages, warnings: Vec::new() };
        sample.link();
        sample
    }

    /// How many files.
    pub fn file_count(&self) -> usize {
        self.packages.iter().map(|package| package.files.len()).sum()
    }

    /// How many lines.
    pub fn line_count(&self) -> usize {
        self.packages.iter().flat_map(|package| &package.files).map(|(_, text)| text.lines().count()).sum()
    }

    /// A fingerprint of every package name, path and text (FNV-1a, 64 bits), so two
    /// runs can tell whether they measured the same input.
    pub fn fingerprint(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for byte in bytes.iter().chain(&[0xff]) {
                hash ^= u64::from(*byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        };
        for package in &self.packages {
            eat(package.name.as_bytes());
            for (path, text) in &package.files {
                eat(path.as_bytes());
                eat(text.as_bytes());
            }
        }
        hash
    }

    /// A package's index, by display name.
    pub fn package_named(&self, name: &str) -> Option<usize> {
        self.packages.iter().position(|package| package.name == name)
    }

    /// Gives packages that share a crate name distinct display names, and resolves
    /// every dependency to the package of the sample it names: the package at its
    /// `path`, else the newest package of that name whose version satisfies the
    /// requirement. A dependency the sample does not hold stays outside
    /// (`None`). A package without a manifest may name every crate of the sample.
    pub fn link(&mut self) {
        let names: Vec<String> = self.packages.iter().map(|p| p.manifest.crate_name.clone()).collect();
        for (index, package) in self.packages.iter_mut().enumerate() {
            let same = names.iter().filter(|name| **name == names[index]).count();
            package.name = if same > 1 {
                format!("{}@{}", package.manifest.crate_name, package.manifest.version)
            } else {
                package.manifest.crate_name.clone()
            };
        }
        for index in 0..self.packages.len() {
            let clash = self.packages[..index].iter().any(|p| p.name == self.packages[index].name);
            if clash {
                self.packages[index].name = format!("{}#{index}", self.packages[index].name);
            }
        }
        let dirs: Vec<Option<PathBuf>> =
            self.packages.iter().map(|p| fs::canonicalize(&p.dir).ok()).collect();
        let mut registry = Registry::default();
        let resolved: Vec<Vec<(String, Option<u32>, u8)>> = (0..self.packages.len())
            .map(|index| {
                let registry = &mut registry;
                let package = &self.packages[index];
                let mut deps: Vec<(String, Option<u32>, u8)> = Vec::new();
                if !package.manifest.declared {
                    for (other, p) in self.packages.iter().enumerate() {
                        if other != index && !deps.iter().any(|(name, _, _)| *name == p.manifest.crate_name) {
                            deps.push((p.manifest.crate_name.clone(), Some(other as u32), dep_kind::NORMAL));
                        }
                    }
                }
                for dep in &package.manifest.dependencies {
                    let by_path = dep.path.as_ref().and_then(|path| {
                        let path = fs::canonicalize(path).ok()?;
                        dirs.iter().position(|dir| dir.as_ref() == Some(&path))
                    });
                    let found = by_path.or_else(|| self.newest(&dep.package, dep.version.as_deref()));
                    // Code names a dependency by its library's name unless `package = …`
                    // renames it.
                    let (name, kinds) = match found {
                        _ if dep.renamed => (dep.name.clone(), dep.kinds),
                        Some(found) => (self.packages[found].manifest.crate_name.clone(), dep.kinds),
                        // A path dependency outside the sample (PATH is a member of a
                        // larger workspace): its manifest says its library's name.
                        None if let Some(Ok(Some(manifest))) =
                            dep.path.as_deref().map(|path| Manifest::read(path, None)) =>
                        {
                            (manifest.crate_name, dep.kinds)
                        }
                        None => match registry.lib_name(&dep.package, dep.version.as_deref()) {
                            Some(name) => (name, dep.kinds),
                            None => (dep.name.clone(), dep.kinds | dep_kind::UNVERIFIED),
                        },
                    };
                    deps.retain(|(known, _, _)| *known != name);
                    deps.push((name, found.map(|found| found as u32), kinds));
                }
                let has_lib = package.roots.iter().any(|(_, module)| module == "crate");
                if has_lib && !deps.iter().any(|(name, _, _)| *name == package.manifest.crate_name) {
                    deps.push((package.manifest.crate_name.clone(), Some(index as u32), dep_kind::OWN_LIB));
                }
                deps.sort();
                deps
            })
            .collect();
        for (package, deps) in self.packages.iter_mut().zip(resolved) {
            package.deps = deps;
        }
    }

    /// The newest package called `name` satisfying `req`.
    fn newest(&self, name: &str, req: Option<&str>) -> Option<usize> {
        let version = |index: usize| semver::Version::parse(&self.packages[index].manifest.version).ok();
        (0..self.packages.len())
            .filter(|&index| {
                let m = &self.packages[index].manifest;
                m.declared && m.package == name && manifest::satisfies(&m.version, req)
            })
            .max_by(|&a, &b| version(a).cmp(&version(b)))
    }
}

/// The library names of packages in the cargo registry's sources, read on demand.
#[derive(Default)]
struct Registry {
    /// Each source directory's name (`name-version`) and path, once listed.
    dirs: Option<Vec<(String, PathBuf)>>,
}

impl Registry {
    /// The library name of the newest registry package `package` satisfying `req`.
    fn lib_name(&mut self, package: &str, req: Option<&str>) -> Option<String> {
        let dirs = self.dirs.get_or_insert_with(|| {
            registry_dirs()
                .iter()
                .filter_map(|dir| fs::read_dir(dir).ok())
                .flat_map(|entries| entries.filter_map(Result::ok))
                .map(|entry| (entry.file_name().to_string_lossy().into_owned(), entry.path()))
                .collect()
        });
        let best = dirs
            .iter()
            .filter_map(|(name, path)| {
                let version = name.strip_prefix(package)?.strip_prefix('-')?;
                let parsed = semver::Version::parse(version).ok()?;
                manifest::satisfies(version, req).then_some((parsed, path))
            })
            .max_by(|a, b| a.0.cmp(&b.0))?;
        Manifest::read(best.1, None).ok().flatten().map(|manifest| manifest.crate_name)
    }
}

/// Reads what `root` holds: a `.rs` file (a crate of its own), a package, a
/// workspace (its members, and the path dependencies inside it), or a directory of
/// packages (each directory holding a `Cargo.toml`; a file belongs to the nearest
/// one above it, and `root` is one even without a manifest). Hidden directories,
/// Cargo's build directories and unreadable files are skipped.
pub fn load_tree(root: &Path) -> std::io::Result<Sample> {
    let mut sample = Sample::default();
    if root.is_file() {
        let name = root.file_name().map_or("main.rs".into(), |n| n.to_string_lossy().into_owned());
        let text = fs::read_to_string(root)?;
        let dir = root.parent().unwrap_or(Path::new(".")).to_owned();
        sample.packages.push(Package::with_manifest(Manifest::lone_file(&name), dir, vec![(name, text)]));
        sample.link();
        return Ok(sample);
    }
    let workspace = workspace_of(root);
    let members = workspace.as_ref().and_then(|(dir, table)| {
        let members = table.get("workspace")?.get("members")?.as_array()?;
        let exclude: Vec<PathBuf> = table
            .get("workspace")
            .and_then(|w| w.get("exclude"))
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str().map(|e| dir.join(e)))
            .collect();
        let mut dirs = Vec::new();
        for pattern in members.iter().filter_map(|m| m.as_str()) {
            let pattern = dir.join(pattern).to_string_lossy().into_owned();
            for found in glob::glob(&pattern).into_iter().flatten().flatten() {
                if found.join("Cargo.toml").is_file() && !exclude.iter().any(|e| found.starts_with(e)) {
                    dirs.push(found);
                }
            }
        }
        Some(dirs)
    });
    let table = workspace.as_ref().map(|(_, table)| table);
    match members {
        // A workspace whose root is `root`: its members (and the root package).
        Some(dirs) if workspace.as_ref().is_some_and(|(dir, _)| same_dir(dir, root)) => {
            let mut dirs: std::collections::VecDeque<PathBuf> = dirs.into();
            dirs.push_front(root.to_owned());
            let mut seen: Vec<PathBuf> = Vec::new();
            while let Some(dir) = dirs.pop_front() {
                let canonical = fs::canonicalize(&dir).unwrap_or(dir.clone());
                if seen.contains(&canonical) {
                    continue;
                }
                seen.push(canonical);
                let Some(package) = read_package(&dir, table, &mut sample.warnings)? else { continue };
                // Path dependencies inside the workspace are members too.
                for dep in &package.manifest.dependencies {
                    if let Some(path) = &dep.path
                        && path.starts_with(root)
                        && path.join("Cargo.toml").is_file()
                    {
                        dirs.push_back(path.clone());
                    }
                }
                sample.packages.push(package);
            }
        }
        _ => collect_packages(root, true, table, &mut sample)?,
    }
    sample.link();
    Ok(sample)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    fs::canonicalize(a).ok().zip(fs::canonicalize(b).ok()).is_some_and(|(a, b)| a == b)
}

/// The workspace `dir` belongs to: the nearest manifest at or above it with a
/// `[workspace]` table, and that table.
fn workspace_of(dir: &Path) -> Option<(PathBuf, toml::Table)> {
    let start = fs::canonicalize(dir).ok()?;
    start.ancestors().find_map(|dir| {
        let table = manifest::read_table(dir)?;
        table.contains_key("workspace").then(|| (dir.to_owned(), table))
    })
}

/// The package in `dir`: its manifest and its files (not those of packages nested
/// inside it). `Ok(None)` for a directory whose manifest has no `[package]`.
fn read_package(
    dir: &Path,
    workspace: Option<&toml::Table>,
    warnings: &mut Vec<String>,
) -> std::io::Result<Option<Package>> {
    let Some(manifest) = manifest_of(dir, workspace, warnings) else { return Ok(None) };
    let mut files = Vec::new();
    walk(dir, "", &mut files, &mut Vec::new())?;
    Ok(Some(Package::with_manifest(manifest, dir.to_owned(), files)))
}

/// The manifest of the package in `dir`: `None` for a virtual workspace root, Cargo's
/// defaults (and a warning) for one that cannot be read.
fn manifest_of(dir: &Path, workspace: Option<&toml::Table>, warnings: &mut Vec<String>) -> Option<Manifest> {
    match Manifest::read(dir, workspace) {
        Ok(manifest) => manifest,
        Err(error) => {
            warnings.push(error.to_string());
            Some(Manifest::undeclared(&fallback_name(dir)))
        }
    }
}

fn collect_packages(
    dir: &Path,
    is_root: bool,
    workspace: Option<&toml::Table>,
    sample: &mut Sample,
) -> std::io::Result<()> {
    let has_manifest = dir.join("Cargo.toml").is_file();
    if !is_root && !has_manifest {
        return Ok(());
    }
    let mut files = Vec::new();
    let mut nested = Vec::new();
    walk(dir, "", &mut files, &mut nested)?;
    // No manifest, or a virtual one whose directory holds files (rare): Cargo's defaults.
    let manifest = has_manifest
        .then(|| manifest_of(dir, workspace, &mut sample.warnings))
        .flatten()
        .unwrap_or_else(|| Manifest::undeclared(&fallback_name(dir)));
    if !files.is_empty() || has_manifest {
        sample.packages.push(Package::with_manifest(manifest, dir.to_owned(), files));
    }
    nested.sort();
    for dir in nested {
        collect_packages(&dir, false, workspace, sample)?;
    }
    Ok(())
}

/// Whether `dir` is a build directory Cargo made (it tags them).
fn is_build_dir(dir: &Path) -> bool {
    dir.join("CACHEDIR.TAG").is_file() || dir.join(".rustc_info.json").is_file()
}

fn walk(
    dir: &Path,
    relative: &str,
    files: &mut Vec<(String, String)>,
    nested: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.filter_map(Result::ok).collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let relative = if relative.is_empty() { name.clone() } else { format!("{relative}/{name}") };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if name.starts_with('.') || is_build_dir(&path) {
                continue;
            }
            if path.join("Cargo.toml").is_file() {
                nested.push(path);
            } else {
                walk(&path, &relative, files, nested)?;
            }
        } else if kind.is_file()
            && name.ends_with(".rs")
            && let Ok(text) = fs::read_to_string(&path)
        {
            files.push((relative, text));
        }
    }
    Ok(())
}

/// A package name for a directory without a readable manifest: the directory's
/// name without a version suffix (`syn-2.0.1` → `syn`).
fn fallback_name(dir: &Path) -> String {
    let dir_name = dir.file_name().map_or_else(|| "root".to_owned(), |n| n.to_string_lossy().into_owned());
    match dir_name.rsplit_once('-') {
        Some((name, version)) if version.starts_with(|c: char| c.is_ascii_digit()) => name.to_owned(),
        _ => dir_name,
    }
}

/// Of the package directories `dirs` (canonical), the index of the innermost one
/// holding `absolute` (a canonical path, which need not exist), and the path
/// relative to it with `/` separators.
pub fn innermost_package<'a>(
    dirs: impl IntoIterator<Item = &'a Path>,
    absolute: &Path,
) -> Option<(usize, String)> {
    dirs.into_iter()
        .enumerate()
        .filter_map(|(index, dir)| {
            let relative = absolute.strip_prefix(dir).ok()?;
            Some((dir.components().count(), index, relative.to_string_lossy().replace('\\', "/")))
        })
        .max()
        .map(|(_, index, path)| (index, path))
}

/// The cargo registry's source directories (`$CARGO_HOME/registry/src/*`).
pub fn registry_dirs() -> Vec<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    let Some(src) = home.map(|home| home.join("registry").join("src")) else { return Vec::new() };
    let mut dirs: Vec<PathBuf> = fs::read_dir(src)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// The real-source sample: whole crates from the registry's sources taken in name
/// order until they hold at least `files` `.rs` files. `None` when the registry holds
/// fewer (build the project first: its dependencies fill it).
pub fn registry_sample(files: usize) -> Option<Sample> {
    let sample = registry_crates(files);
    (sample.file_count() >= files).then_some(sample)
}

/// Every crate of the registry's sources (what a build unpacked there), in name
/// order; `None` when they hold fewer than `at_least` `.rs` files.
pub fn registry_whole(at_least: usize) -> Option<Sample> {
    let sample = registry_crates(usize::MAX);
    (sample.file_count() >= at_least).then_some(sample)
}

/// Whole crates of the registry's sources in name order, until they hold at least
/// `files` `.rs` files (or there are no more).
fn registry_crates(files: usize) -> Sample {
    let mut crates: Vec<PathBuf> = registry_dirs()
        .iter()
        .filter_map(|dir| fs::read_dir(dir).ok())
        .flat_map(|entries| entries.filter_map(Result::ok).map(|e| e.path()))
        .filter(|path| path.join("Cargo.toml").is_file())
        .collect();
    crates.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    let mut sample = Sample::default();
    for dir in crates {
        if sample.file_count() >= files {
            break;
        }
        if let Ok(Some(package)) = read_package(&dir, None, &mut sample.warnings)
            && !package.files.is_empty()
        {
            sample.packages.push(package);
        }
    }
    sample.link();
    sample
}
