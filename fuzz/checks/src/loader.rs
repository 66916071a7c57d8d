//! The persisted-directory loader on mutated directories: whatever the files hold,
//! opening ends in a typed error or a database that answers and is consistent; never
//! a panic, an out-of-bounds read or an abort.
//!
//! An input is a directory, encoded as files one after the other: a slot byte (0 is
//! `MANIFEST`, 1 to 4 the segment files `seg-0000000001.chunks` and on), a
//! little-endian `u32` length, then that many bytes (fewer if the input ends first).
//! [`seed`] encodes a real directory written by the runtime, so mutations start from
//! valid files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use chunkdb_database::reference::{DIAGNOSTICS, Diagnostic, Function, RefLang, SYMBOLS};
use chunkdb_database::{Database, Ident, OpenOptions};

/// The files an input stands for, as (file name, bytes).
pub fn files_of(data: &[u8]) -> Vec<(String, &[u8])> {
    let mut files = Vec::new();
    let mut rest = data;
    while let [slot, tail @ ..] = rest {
        let Some((len, tail)) = tail.split_first_chunk::<4>() else { break };
        let len = (u32::from_le_bytes(*len) as usize).min(tail.len());
        let name = match slot % 5 {
            0 => "MANIFEST".to_owned(),
            segment => format!("seg-{segment:010}.chunks"),
        };
        files.push((name, &tail[..len]));
        rest = &tail[len..];
    }
    files
}

/// Encodes `files` as an input.
pub fn encode(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, bytes) in files {
        let slot = if name == "MANIFEST" {
            0
        } else {
            name.trim_start_matches("seg-").trim_end_matches(".chunks").parse::<u8>().unwrap_or(1)
        };
        out.push(slot);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// A fresh, empty directory for one check, its own even when checks run on several
/// threads (each check removes it when done).
fn scratch() -> PathBuf {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "chunkdb-fuzz-loader-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// Writes the input's files into a directory and opens it, as is and discarding
/// damage; whatever opens must answer every query and pass its consistency check.
pub fn check_directory(data: &[u8]) {
    let dir = scratch();
    for (name, bytes) in files_of(data) {
        std::fs::write(dir.join(name), bytes).expect("a scratch file");
    }
    let checked = || OpenOptions::new().check_at_open(true);
    for options in
        [OpenOptions::new(), OpenOptions::new().discard_damaged(true), checked().discard_damaged(true)]
    {
        // Every error is a typed one; opening must not panic.
        if let Ok(db) = options.open::<RefLang>(&dir) {
            answer_everything(&db);
            db.check_consistency().expect("a database that opens is consistent");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn answer_everything(db: &Database<RefLang>) {
    let snapshot = db.snapshot();
    for partition in [SYMBOLS, DIAGNOSTICS] {
        let hits = match snapshot.query(partition).execute() {
            Ok(hits) => hits,
            // Records are checked when first read: damage there is this typed error.
            Err(chunkdb_database::Error::DamagedRecords { .. }) => continue,
            Err(other) => panic!("a declared partition answers, or reports damaged records: {other}"),
        };
        for hit in hits.iter() {
            std::hint::black_box(format!("{:?} {:?}", hit.sort_key(), hit.record()));
        }
    }
}

/// A real directory written by the runtime: two sources and a reader of one, flushed.
pub fn seed_directory(dir: &Path) {
    let db = Database::<RefLang>::open(dir).expect("a fresh directory opens");
    for (file, names) in [("a.rs", &["main", "helper"][..]), ("b.rs", &["lib"][..])] {
        let ident = Ident::named(file);
        let mut writer = db.writer(format!("parse:{file}"));
        for name in names {
            writer.insert(SYMBOLS, (ident, *name), Function::new(name, &["i32"], Some("u8"))).expect("valid");
        }
        writer.commit().expect("valid commit");
    }
    let check = db.task("check:a.rs");
    let found = check.query(SYMBOLS).begins_with((Ident::named("a.rs"),)).execute().expect("valid").len();
    check
        .insert(
            DIAGNOSTICS,
            (Ident::named("a.rs"), 1u8, 0u32),
            Diagnostic::new(&format!("{found} items"), 1, 1),
        )
        .expect("valid");
    check.commit().expect("valid commit");
    db.flush().expect("flushed");
}

/// The files of a directory written as `seed_directory` writes it, as an input.
pub fn seed() -> Vec<u8> {
    let dir = scratch();
    seed_directory(&dir);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("the seed directory")
        .map(|entry| entry.expect("an entry"))
        .filter(|entry| entry.file_name() != "LOCK")
        .map(|entry| {
            (entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path()).expect("a file"))
        })
        .collect();
    files.sort();
    let _ = std::fs::remove_dir_all(&dir);
    encode(&files)
}
