//! Inputs: a directory of Rust packages read from disk, or the deterministic
//! real-source sample (whole crates from the cargo registry's sources, in name order).

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

/// One Cargo package: its crate name and its `.rs` files (paths relative to the
/// package directory, `/`-separated, sorted).
#[derive(Clone, Debug)]
pub struct Package {
    /// The crate name (`-` turned into `_`), as paths in other packages spell it.
    pub name: String,
    /// Where it was read from.
    pub dir: PathBuf,
    /// Relative path and text of each file.
    pub files: Vec<(String, String)>,
}

/// A set of packages to index.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// The packages, in the order they were found.
    pub packages: Vec<Package>,
}

impl Sample {
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

    /// A package's index, by crate name.
    pub fn package_named(&self, name: &str) -> Option<usize> {
        self.packages.iter().position(|package| package.name == name)
    }
}

/// Reads every package under `root`: each directory holding a `Cargo.toml` is a
/// package, and a file belongs to the nearest one above it (`root` itself is one even
/// without a manifest). `target`, hidden directories and unreadable files are skipped.
pub fn load_tree(root: &Path) -> std::io::Result<Sample> {
    let mut sample = Sample::default();
    collect_packages(root, true, &mut sample)?;
    Ok(sample)
}

fn collect_packages(dir: &Path, is_root: bool, sample: &mut Sample) -> std::io::Result<()> {
    let manifest = dir.join("Cargo.toml");
    if !is_root && !manifest.is_file() {
        return Ok(());
    }
    let mut package = Package { name: package_name(dir), dir: dir.to_owned(), files: Vec::new() };
    let mut nested = Vec::new();
    walk(dir, "", &mut package.files, &mut nested)?;
    package.files.sort();
    sample.packages.push(package);
    nested.sort();
    for dir in nested {
        collect_packages(&dir, false, sample)?;
    }
    Ok(())
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
            if name.starts_with('.') || name == "target" {
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

/// The crate name from `Cargo.toml`'s `[package] name`, else the directory's name
/// without a version suffix (`syn-2.0.1` → `syn`).
fn package_name(dir: &Path) -> String {
    let from_manifest = fs::read_to_string(dir.join("Cargo.toml")).ok().and_then(|manifest| {
        let mut in_package = false;
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                in_package = line == "[package]";
            } else if in_package && let Some(value) = line.strip_prefix("name") {
                let value = value.trim_start().strip_prefix('=')?.trim().trim_matches('"');
                return Some(value.to_owned());
            }
        }
        None
    });
    let name = from_manifest.unwrap_or_else(|| {
        let dir_name =
            dir.file_name().map_or_else(|| "root".to_owned(), |n| n.to_string_lossy().into_owned());
        match dir_name.rsplit_once('-') {
            Some((name, version)) if version.starts_with(|c: char| c.is_ascii_digit()) => name.to_owned(),
            _ => dir_name,
        }
    });
    name.replace('-', "_")
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
            return Some(sample);
        }
        let mut package = Package { name: package_name(&dir), dir: dir.clone(), files: Vec::new() };
        let mut nested = Vec::new();
        if walk(&dir, "", &mut package.files, &mut nested).is_ok() && !package.files.is_empty() {
            package.files.sort();
            sample.packages.push(package);
        }
    }
    (sample.file_count() >= files).then_some(sample)
}
