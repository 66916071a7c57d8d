//! The reference-model test, shared by the runtime's tests (hand-written schema) and
//! the facade's (a `chunk_schema!` schema): random commits, supersessions, removals,
//! snapshots and queries of every kind, checked against a naive reference (a list of
//! versions filtered at the snapshot's clock and sorted). Keys are typed `(u8, String)`
//! tuples and the model evaluates every condition on the typed values, independently
//! of the byte encoding.

use std::collections::BTreeMap;

use chunkdb_database::{Database, Error, Ident, KeyPrefix, Query, Schema, Snapshot, SortKeyRef, TaskId};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

/// A schema the model can drive: records carry one string, partitions `p0` and `p1`
/// take `(u8, String)` keys.
pub trait ModelLang: Schema {
    /// A record holding `value`.
    fn record(value: String) -> Self::Record;
    /// The value a stored record holds.
    fn value(record: Self::RecordRef<'_>) -> String;
}

type Key = (u8, String);

const TASKS: [&str; 5] = ["t0", "t1", "t2", "t3", "t4"];
const PARTITIONS: [&str; 2] = ["p0", "p1"];
const STRINGS: [&str; 6] = ["", "a", "ab", "a\0b", "b", "ba"];

#[derive(Clone, Debug)]
enum Bound {
    /// `(n,)`: compares the first component only.
    Short(u8),
    /// `(n, s)`: a whole key.
    Full(Key),
}

#[derive(Clone, Debug)]
enum Condition {
    All,
    Exact(Key),
    BeginsWith(u8),
    BeginsWithStr(u8, String),
    Between(Bound, Bound),
    Lt(Bound),
    Le(Bound),
    Gt(Bound),
    Ge(Bound),
}

#[derive(Clone, Debug)]
enum Op {
    Commit {
        task: usize,
        records: Vec<(usize, Key, String)>,
    },
    Remove {
        task: usize,
    },
    TakeSnapshot,
    DropSnapshot(usize),
    Query {
        snapshot: usize,
        partition: usize,
        condition: Condition,
    },
    /// Flush, close and reopen a persisted database (nothing in memory).
    Reopen,
}

fn key() -> impl Strategy<Value = Key> {
    (0u8..4, prop::sample::select(&STRINGS[..]).prop_map(str::to_string))
}

fn bound() -> impl Strategy<Value = Bound> {
    prop_oneof![(0u8..5).prop_map(Bound::Short), key().prop_map(Bound::Full)]
}

fn condition() -> impl Strategy<Value = Condition> {
    prop_oneof![
        Just(Condition::All),
        key().prop_map(Condition::Exact),
        (0u8..5).prop_map(Condition::BeginsWith),
        (0u8..4, prop::sample::select(&["", "a", "b", "ab", "a\0"][..]))
            .prop_map(|(n, s)| Condition::BeginsWithStr(n, s.to_string())),
        (bound(), bound()).prop_map(|(a, b)| Condition::Between(a, b)),
        bound().prop_map(Condition::Lt),
        bound().prop_map(Condition::Le),
        bound().prop_map(Condition::Gt),
        bound().prop_map(Condition::Ge),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..TASKS.len(), prop::collection::vec((0..PARTITIONS.len(), key(), "[xyz]{0,2}"), 0..6))
            .prop_map(|(task, records)| Op::Commit { task, records }),
        1 => (0..TASKS.len()).prop_map(|task| Op::Remove { task }),
        1 => Just(Op::TakeSnapshot),
        1 => (0usize..8).prop_map(Op::DropSnapshot),
        6 => (0usize..8, 0..PARTITIONS.len(), condition())
            .prop_map(|(snapshot, partition, condition)| Op::Query { snapshot, partition, condition }),
        1 => Just(Op::Reopen),
    ]
}

/// One task's records: (partition, key) to value.
type Records = BTreeMap<(usize, Key), String>;

/// The reference: every version ever committed, with its clock.
#[derive(Default)]
struct Model {
    clock: u64,
    /// (clock, task, records or None for a removal)
    versions: Vec<(u64, usize, Option<Records>)>,
}

impl Model {
    fn current(&self, task: usize, at: u64) -> Option<&Records> {
        self.versions
            .iter()
            .rev()
            .find(|(clock, t, _)| *t == task && *clock <= at)
            .and_then(|(_, _, r)| r.as_ref())
    }

    /// Returns (stored, output changed), as the receipt must report them.
    fn commit(&mut self, task: usize, records: Records) -> (bool, bool) {
        let previous = self.current(task, self.clock);
        if previous == Some(&records) {
            return (false, false); // identical chunk: stored once, nothing changes
        }
        let changed = previous.map_or(!records.is_empty(), |_| true);
        self.clock += 1;
        self.versions.push((self.clock, task, Some(records)));
        (true, changed)
    }

    /// Returns whether the removal changed anything.
    fn remove(&mut self, task: usize) -> bool {
        if self.current(task, self.clock).is_none() {
            return false;
        }
        self.clock += 1;
        self.versions.push((self.clock, task, None));
        true
    }

    fn records(&self, at: u64) -> usize {
        (0..TASKS.len()).filter_map(|task| self.current(task, at)).map(BTreeMap::len).sum()
    }

    fn query(&self, at: u64, partition: usize, condition: &Condition) -> Vec<(Key, u64, String)> {
        let mut out = Vec::new();
        for (task, name) in TASKS.iter().enumerate() {
            if let Some(records) = self.current(task, at) {
                for ((p, key), value) in records {
                    if *p == partition && matches(key, condition) {
                        out.push((key.clone(), TaskId::new(name).ident().raw(), value.clone()));
                    }
                }
            }
        }
        out.sort();
        out
    }
}

fn cmp_bound(key: &Key, bound: &Bound) -> std::cmp::Ordering {
    match bound {
        Bound::Short(n) => key.0.cmp(n),
        Bound::Full(full) => key.cmp(full),
    }
}

fn matches(key: &Key, condition: &Condition) -> bool {
    use std::cmp::Ordering::*;
    match condition {
        Condition::All => true,
        Condition::Exact(k) => key == k,
        Condition::BeginsWith(n) => key.0 == *n,
        Condition::BeginsWithStr(n, s) => key.0 == *n && key.1.starts_with(s.as_str()),
        Condition::Between(low, high) => cmp_bound(key, low) != Less && cmp_bound(key, high) != Greater,
        Condition::Lt(b) => cmp_bound(key, b) == Less,
        Condition::Le(b) => cmp_bound(key, b) != Greater,
        Condition::Gt(b) => cmp_bound(key, b) == Greater,
        Condition::Ge(b) => cmp_bound(key, b) != Less,
    }
}

fn prefix(bound: &Bound) -> KeyPrefix {
    match bound {
        Bound::Short(n) => KeyPrefix::new((*n,)),
        Bound::Full((n, s)) => KeyPrefix::new((*n, s.as_str())),
    }
}

fn build<'s, L: ModelLang>(query: Query<'s, L>, condition: &Condition) -> Query<'s, L> {
    match condition {
        Condition::All => query,
        Condition::Exact((n, s)) => query.exact((*n, s.as_str())),
        Condition::BeginsWith(n) => query.begins_with((*n,)),
        Condition::BeginsWithStr(n, s) => query.begins_with(KeyPrefix::new((*n,)).str_prefix(s)),
        Condition::Between(low, high) => query.between(prefix(low), prefix(high)),
        Condition::Lt(b) => query.lt(prefix(b)),
        Condition::Le(b) => query.le(prefix(b)),
        Condition::Gt(b) => query.gt(prefix(b)),
        Condition::Ge(b) => query.ge(prefix(b)),
    }
}

fn decode(key: SortKeyRef<'_>) -> Key {
    let bytes = key.as_bytes();
    let mut text = Vec::new();
    let mut i = 1;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (0, Some(0x01)) => break,
            (0, Some(0xFF)) => {
                text.push(0);
                i += 2;
            }
            (byte, _) => {
                text.push(byte);
                i += 1;
            }
        }
    }
    (bytes[0], String::from_utf8(text).expect("keys are UTF-8"))
}

fn run<L: ModelLang>(ops: &[Op], dir: Option<&std::path::Path>) -> Result<usize, TestCaseError> {
    let open = || match dir {
        Some(dir) => {
            let _ = std::fs::remove_dir_all(dir);
            Database::<L>::open(dir).unwrap()
        }
        None => Database::<L>::new(),
    };
    let mut db = open();
    let mut model = Model::default();
    let mut snapshots: Vec<(Snapshot<L>, u64)> = vec![(db.snapshot(), 0)];
    let mut checked = 0;
    for op in ops {
        match op {
            Op::Commit { task, records } => {
                let mut writer = db.writer(TASKS[*task]);
                let mut expected = BTreeMap::new();
                let mut duplicate = false;
                for (partition, (n, s), value) in records {
                    writer
                        .insert(
                            Ident::named(PARTITIONS[*partition]),
                            (*n, s.as_str()),
                            L::record(value.clone()),
                        )
                        .unwrap();
                    duplicate |= expected.insert((*partition, (*n, s.clone())), value.clone()).is_some();
                }
                let clock_before = db.clock();
                match writer.commit() {
                    Err(Error::DuplicateSortKey { .. }) => {
                        prop_assert!(duplicate);
                        prop_assert_eq!(db.clock(), clock_before);
                    }
                    Err(other) => return Err(TestCaseError::fail(format!("unexpected error {other}"))),
                    Ok(receipt) => {
                        prop_assert!(!duplicate);
                        let (stored, changed) = model.commit(*task, expected);
                        prop_assert_eq!(receipt.clock, model.clock);
                        prop_assert_eq!((receipt.stored, receipt.output_changed), (stored, changed));
                        prop_assert_eq!(db.stats().records, model.records(model.clock));
                    }
                }
            }
            Op::Remove { task } => {
                let receipt = db.remove_task(TASKS[*task]);
                prop_assert_eq!(receipt.stored, model.remove(*task));
                prop_assert_eq!(receipt.clock, model.clock);
            }
            Op::Reopen => {
                if let Some(dir) = dir {
                    db.flush().unwrap();
                    drop(db);
                    // Snapshots taken before stay valid: they hold their state in memory.
                    db = Database::<L>::open(dir).unwrap();
                    prop_assert_eq!(db.clock(), model.clock);
                    prop_assert_eq!(db.stats().records, model.records(model.clock));
                    db.check_consistency().unwrap();
                    snapshots.push((db.snapshot(), model.clock));
                }
            }
            Op::TakeSnapshot => snapshots.push((db.snapshot(), model.clock)),
            Op::DropSnapshot(at) => {
                if snapshots.len() > 1 {
                    snapshots.remove(at % snapshots.len());
                }
            }
            Op::Query { snapshot, partition, condition } => {
                let (snap, at) = &snapshots[snapshot % snapshots.len()];
                prop_assert_eq!(snap.clock(), *at);
                prop_assert_eq!(snap.len(), model.records(*at));
                let query = build(snap.query(Ident::named(PARTITIONS[*partition])), condition);
                let got: Vec<(Key, u64, String)> = query
                    .execute()
                    .unwrap()
                    .iter()
                    .map(|hit| (decode(hit.sort_key()), hit.task().ident().raw(), L::value(hit.record())))
                    .collect();
                let expected = model.query(*at, *partition, condition);
                prop_assert_eq!(got, expected, "{:?} at clock {}", condition, at);
                checked += 1;
            }
        }
    }
    // The newest snapshot agrees with the model on everything.
    let latest = db.snapshot();
    for (partition, name) in PARTITIONS.iter().enumerate() {
        let got = latest.query(Ident::named(name)).count().unwrap();
        prop_assert_eq!(got, model.query(model.clock, partition, &Condition::All).len());
    }
    Ok(checked)
}

/// Runs `cases` random scripts of 400 to 500 operations against schema `L` with a
/// fixed seed, and returns how many operations ran.
pub fn check_against_model<L: ModelLang>(cases: u32, seed: u64) -> usize {
    check_model::<L>(cases, seed, None)
}

/// Like [`check_against_model`], on a database persisted in a fresh directory that
/// the scripts close and reopen at random points: a reopened database answers every
/// query as the one before did.
pub fn check_against_model_persisted<L: ModelLang>(cases: u32, seed: u64) -> usize {
    let dir = tempfile::tempdir().unwrap();
    check_model::<L>(cases, seed, Some(dir.path().join("db")))
}

fn check_model<L: ModelLang>(cases: u32, seed: u64, dir: Option<std::path::PathBuf>) -> usize {
    let config =
        Config { cases, rng_seed: RngSeed::Fixed(seed), failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let total = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&prop::collection::vec(op(), 400..500), |ops| {
            run::<L>(&ops, dir.as_deref())?;
            total.fetch_add(ops.len(), std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    total.into_inner()
}
