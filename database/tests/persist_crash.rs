//! Crash safety: a child process commits and flushes in a loop and is killed with
//! SIGKILL at random moments; after each kill the directory opens, holds exactly the
//! state of one completed sync at least as new as the last flush the child
//! acknowledged, and is consistent.
//!
//! The child is this test binary run again with `CHUNKDB_CRASH_DIR` set. Its commits
//! are a pure function of the clock, so the parent knows the state at every clock.
//! 20 kills by default; `CHUNKDB_CRASH_KILLS=200` for a full run.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chunkdb_database::reference::{Function, RefLang, RefRecordRef, SYMBOLS};
use chunkdb_database::{Database, Ident, OpenOptions};

const TASKS: u64 = 7;

/// The commit that makes clock `n`: task `n % TASKS`, records that depend on `n`.
fn commit(db: &Database<RefLang>, n: u64) {
    let file = Ident::named("crash.rs");
    let mut writer = db.writer(format!("task:{}", n % TASKS));
    for at in 0..(n % 5 + 1) {
        let name = format!("f{n}_{at}");
        writer.insert(SYMBOLS, (file, name.as_str()), Function::new(&name, &[], None)).unwrap();
    }
    assert_eq!(writer.commit().unwrap().clock, n, "one commit per clock value");
}

/// The records every task holds at clock `clock`, as the child wrote them.
fn expected_at(clock: u64) -> Vec<u64> {
    let mut names: Vec<u64> = (clock.saturating_sub(TASKS - 1).max(1)..=clock)
        .flat_map(|n| (0..(n % 5 + 1)).map(move |at| Ident::new(&format!("f{n}_{at}")).raw()))
        .collect();
    names.sort_unstable();
    names
}

/// The names of the functions the database holds.
fn names_in(db: &Database<RefLang>) -> Vec<u64> {
    let snapshot = db.snapshot();
    let hits = snapshot.query(SYMBOLS).execute().unwrap();
    let mut names: Vec<u64> = hits
        .records()
        .filter_map(|record| match record {
            RefRecordRef::Function(function) => Some(function.name.get().raw()),
            _ => None,
        })
        .collect();
    names.sort_unstable();
    names
}

/// The child: opens the directory and commits and flushes until it is killed.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os("CHUNKDB_CRASH_DIR") else { return };
    let db = OpenOptions::new().write_delay(Duration::from_millis(1)).open::<RefLang>(&dir).unwrap();
    let mut n = db.clock();
    loop {
        n += 1;
        commit(&db, n);
        if n.is_multiple_of(3) {
            db.flush().unwrap();
            println!("flushed {n}");
        }
    }
}

#[test]
fn sigkill_at_random_moments_leaves_a_flushed_state() {
    if std::env::var_os("CHUNKDB_CRASH_DIR").is_some() {
        return;
    }
    let kills: usize = std::env::var("CHUNKDB_CRASH_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed: u64 = 0x5151_6b11;
    let mut acknowledged = 0;
    let mut newer_than_acknowledged = 0;
    for kill in 0..kills {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("CHUNKDB_CRASH_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = std::thread::spawn(move || {
            BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<String>>()
        });
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        // Long enough to get past the open most of the time, short enough to land
        // anywhere in a commit, a segment write or a manifest rename.
        let wait = Duration::from_micros(2_000 + (seed >> 33) % 40_000);
        let started = Instant::now();
        while started.elapsed() < wait {
            std::thread::sleep(Duration::from_micros(200));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = lines.join().unwrap();
        if let Some(last) = lines.iter().rev().find_map(|line| line.strip_prefix("flushed ")) {
            acknowledged = last.parse::<u64>().unwrap();
        }

        let db = Database::<RefLang>::open(dir.path())
            .unwrap_or_else(|error| panic!("kill {kill}: the directory does not open: {error}"));
        let clock = db.clock();
        assert!(
            clock >= acknowledged,
            "kill {kill}: clock {clock} is older than the acknowledged flush {acknowledged}"
        );
        newer_than_acknowledged += usize::from(clock > acknowledged);
        assert_eq!(
            names_in(&db),
            expected_at(clock),
            "kill {kill}: the state at clock {clock} is not the one committed"
        );
        db.check_consistency().unwrap();
        acknowledged = clock;
    }
    assert!(acknowledged > 0, "the child never got to flush");
    println!(
        "{kills} kills; final clock {acknowledged}; {newer_than_acknowledged} reopened past the last acknowledged flush"
    );
}
