//! The real-source figures of the performance report: chunkdb's pipeline against its
//! salsa twin on the registry sample, and the peak memory of each measured in a
//! process of its own.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use super::chunk_index::ChunkIndex;
use super::salsa_index::{Durabilities, MemoCounts, SalsaIndex};
use super::sample::{self, Sample};
use super::script::Session;
use super::session::{self, Edit, Pipeline};
use super::syntax;

/// Sizes of the real-source measurements.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Files of the small sample (the SPEC's 1,000).
    pub small: usize,
    /// Files of the large sample (the SPEC's 3,000).
    pub large: usize,
    /// Cold-build trials per system.
    pub cold_trials: usize,
    /// Trials per edit kind.
    pub edit_trials: usize,
    /// Whether to measure the body edit on the registry's whole sources too
    /// (`edit_body_5k_vs_1k`: a build of every crate unpacked there).
    pub whole: bool,
}

/// The figures, as (name, value, op, bound, detail); a `None` value carries why it
/// could not be measured.
pub type Figure = (&'static str, Result<f64, String>, &'static str, f64, String);

/// One edit applied to both systems, as a pair: the edit and the one undoing it.
struct Toggle {
    /// The edit of each use in turn. A body edit types new text each time, as a user
    /// does, so no system answers a trial from what it kept of an earlier one (salsa
    /// keeps the memo of every piece it ever parsed; the toggle's undo brings the
    /// first text back).
    forward: Box<dyn Fn(usize) -> Vec<Edit>>,
    back: Vec<Edit>,
    uses: std::cell::Cell<usize>,
}

impl Toggle {
    fn new(forward: impl Fn(usize) -> Vec<Edit> + 'static, back: Vec<Edit>) -> Self {
        Toggle { forward: Box::new(forward), back, uses: std::cell::Cell::new(0) }
    }

    /// The forward edit of the next use.
    fn next(&self) -> Vec<Edit> {
        let use_ = self.uses.replace(self.uses.get() + 1);
        (self.forward)(use_)
    }
}

/// The salsa twins the edit figures are measured against, by name: the twin as first
/// written (salsa's default durability, every input LOW), then with durability set
/// as rust-analyzer sets it, every text LOW, and the texts of the packages not
/// edited (`workspace` is) HIGH as libraries.
fn twins(workspace: usize) -> [(&'static str, Durabilities); 3] {
    [
        ("default durability", Durabilities::Default),
        ("every text LOW", Durabilities::TextsLow),
        ("libraries HIGH", Durabilities::Libraries { workspace }),
    ]
}

/// One twin's edit measurements: (chunkdb, salsa) medians of each edit, measured
/// interleaved, and salsa's memo counts for one body edit and one added file.
struct TwinEdits {
    name: &'static str,
    body: (Duration, Duration),
    same: (Duration, Duration),
    add: (Duration, Duration),
    counts: [MemoCounts; 2],
}

fn timed(pipeline: &mut impl Pipeline, edits: &[Edit]) -> Duration {
    let started = Instant::now();
    for edit in edits {
        edit.apply(pipeline);
    }
    pipeline.check();
    started.elapsed()
}

/// One application of a toggle's forward edit, timed, then its undo, untimed.
fn toggle_once(pipeline: &mut impl Pipeline, toggle: &Toggle) -> Duration {
    let elapsed = timed(pipeline, &toggle.next());
    timed(pipeline, &toggle.back);
    elapsed
}

/// Median time of `trials` applications of a toggle's forward edit (each followed,
/// untimed, by its undo), on two systems interleaved.
fn toggle_pair(
    a: &mut impl Pipeline,
    b: &mut impl Pipeline,
    toggle: &Toggle,
    trials: usize,
) -> (Duration, Duration) {
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for trial in 0..trials + 1 {
        // Alternate which goes first; the first trial warms up.
        let (first, second) = if trial % 2 == 0 {
            let first = toggle_once(a, toggle);
            (first, toggle_once(b, toggle))
        } else {
            let second = toggle_once(b, toggle);
            (toggle_once(a, toggle), second)
        };
        if trial > 0 {
            ta.push(first);
            tb.push(second);
        }
    }
    (median(ta), median(tb))
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

/// The median of `a[i] / b[i]` over paired trials.
fn median_ratio(a: &[Duration], b: &[Duration]) -> f64 {
    let mut ratios: Vec<f64> = a.iter().zip(b).map(|(a, b)| a.as_secs_f64() / b.as_secs_f64()).collect();
    ratios.sort_unstable_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// Describes a sample on one line.
pub fn describe(sample: &Sample) -> String {
    format!(
        "{} crates, {} files, {} lines, fingerprint {:016x}",
        sample.packages.len(),
        sample.file_count(),
        sample.line_count(),
        sample.fingerprint()
    )
}

/// Measures every real-source figure.
pub fn figures(sizes: Sizes, peak: impl Fn(&str, usize) -> Option<u64>) -> Vec<Figure> {
    let missing = |why: &str| -> Vec<Figure> {
        NAMES
            .iter()
            .map(|(name, op, bound)| (*name, Err(why.to_owned()), *op, *bound, String::new()))
            .collect()
    };
    let (Some(small), Some(large)) =
        (sample::registry_sample(sizes.small), sample::registry_sample(sizes.large))
    else {
        return missing(&format!(
            "the cargo registry holds fewer than {} .rs files; build the project first so its dependencies fill it",
            sizes.large
        ));
    };
    println!("  real-source sample (small): {}", describe(&small));
    println!("  real-source sample (large): {}", describe(&large));
    let Some((package, path, offset)) = session::body_edit_target(&small) else {
        return missing("the sample has no function with a body to edit");
    };
    let original = session::text_of(&small, package, &path).to_owned();
    let edited = session::insert_at(&original, offset, session::BODY_EDIT);
    let write = {
        let path = path.clone();
        move |text: &str| vec![Edit::Write { package, path: path.clone(), text: text.to_owned() }]
    };
    let body = {
        let back = write(&original);
        let (write, original) = (write.clone(), original.clone());
        // `let _edited_by_the_session = 1;`, then `= 2;`, …: a new text each use.
        let statement = session::BODY_EDIT.trim_end_matches("1;").to_owned();
        let forward = move |use_: usize| {
            write(&session::insert_at(&original, offset, &format!("{statement}{};", use_ + 1)))
        };
        Toggle::new(forward, back)
    };
    let same = {
        let write_original = write(&original);
        Toggle::new(move |_| write_original.clone(), write(&original))
    };
    let Some((root, module)) = session::add_file_target(&small, package) else {
        return missing("the edited crate has no src/lib.rs or src/main.rs for the add-file edit");
    };
    let root_text = session::text_of(&small, package, &root).to_owned();
    let added = format!("src/{module}.rs");
    let add = {
        let forward = vec![
            Edit::Write { package, path: added.clone(), text: session::ADDED_FILE.to_owned() },
            Edit::Write { package, path: root.clone(), text: format!("{root_text}\nmod {module};\n") },
        ];
        let back = vec![
            Edit::Remove { package, path: added.clone() },
            Edit::Write { package, path: root.clone(), text: root_text.clone() },
        ];
        Toggle::new(move |_| forward.clone(), back)
    };
    println!(
        "  edited file: {}/{path} ({} lines, {} bytes)",
        small.packages[package].name,
        original.lines().count(),
        original.len()
    );

    // Cold builds, interleaved: chunkdb on all cores, salsa on one thread (the plain
    // documented way), salsa on all cores (a database handle per thread), and the
    // parse floor: syn parsing every file on all cores, nothing else.
    let (mut chunk_cold, mut salsa_cold, mut salsa_parallel_cold) = (Vec::new(), Vec::new(), Vec::new());
    let mut floor_cold = Vec::new();
    let texts: Vec<&str> =
        small.packages.iter().flat_map(|package| &package.files).map(|(_, text)| text.as_str()).collect();
    let mut parallel_same = true;
    let chunk_diagnostics = {
        let mut index = ChunkIndex::load(&small);
        index.check();
        index.diagnostics()
    };
    for trial in 0..sizes.cold_trials {
        let chunk = || {
            let started = Instant::now();
            let mut index = ChunkIndex::load(&small);
            index.check();
            let elapsed = started.elapsed();
            drop(index);
            elapsed
        };
        let salsa = |parallel: bool| {
            let started = Instant::now();
            let mut index = SalsaIndex::load(&small);
            if parallel {
                index.check_parallel();
            } else {
                index.check();
            }
            let elapsed = started.elapsed();
            let same = !parallel || index.diagnostics() == chunk_diagnostics;
            drop(index);
            (elapsed, same)
        };
        let parse_floor = || {
            use rayon::prelude::*;
            let started = Instant::now();
            let parsed = texts.par_iter().filter(|text| syn::parse_file(text).is_ok()).count();
            std::hint::black_box(parsed);
            started.elapsed()
        };
        let mut run = |which: usize| match which {
            0 => chunk_cold.push(chunk()),
            1 => salsa_cold.push(salsa(false).0),
            3 => floor_cold.push(parse_floor()),
            _ => {
                let (elapsed, same) = salsa(true);
                parallel_same &= same;
                salsa_parallel_cold.push(elapsed);
            }
        };
        for which in 0..4 {
            run((trial + which) % 4);
        }
    }
    // Each trial's runs ran back to back, so a slow spell of the shared machine slows
    // all of a trial: the figures are the medians of the trials' ratios.
    let cold_ratio = median_ratio(&chunk_cold, &salsa_cold);
    let cold_parallel_ratio = median_ratio(&chunk_cold, &salsa_parallel_cold);
    let cold_floor_ratio = median_ratio(&chunk_cold, &floor_cold);
    let (chunk_cold, salsa_cold, salsa_parallel_cold, floor_cold) =
        (median(chunk_cold), median(salsa_cold), median(salsa_parallel_cold), median(floor_cold));
    let threads = rayon::current_num_threads();
    println!(
        "info cold_vs_salsa {cold_ratio:.3} (chunkdb on {threads} threads {:.3} ms vs salsa on one {:.3} ms: not a fair comparison, see cold_vs_salsa_parallel)",
        ms(chunk_cold),
        ms(salsa_cold)
    );

    let mut chunk = ChunkIndex::load(&small);
    chunk.check();
    // The edit figures hold against the fastest of the twins (see `TWINS`), each
    // measured interleaved with chunkdb.
    let twins = twins(package);
    let mut edits: Vec<TwinEdits> = Vec::new();
    let mut same_results = true;
    for &(name, durabilities) in &twins {
        let mut salsa = SalsaIndex::load_with(&small, durabilities);
        salsa.check();
        same_results &= chunk.diagnostics() == salsa.diagnostics();
        let body_times = toggle_pair(&mut chunk, &mut salsa, &body, sizes.edit_trials);
        let same_times = toggle_pair(&mut chunk, &mut salsa, &same, sizes.edit_trials);
        let add_times = toggle_pair(&mut chunk, &mut salsa, &add, sizes.edit_trials);
        drop(salsa);
        // What one revision costs salsa, counted on a twin with an event callback
        // (which the timed twins go without).
        let mut counting = SalsaIndex::load_counting(&small, durabilities);
        counting.check();
        let counts = [&body, &add].map(|toggle| {
            let edits = toggle.next();
            let counts = counting.counted(|twin| {
                timed(twin, &edits);
            });
            timed(&mut counting, &toggle.back);
            counts
        });
        edits.push(TwinEdits { name, body: body_times, same: same_times, add: add_times, counts });
    }
    let best = |of: fn(&TwinEdits) -> (Duration, Duration)| -> &TwinEdits {
        edits.iter().min_by_key(|twin| of(twin).1).expect("there are twins")
    };
    let (best_body, best_same, best_add) = (best(|t| t.body), best(|t| t.same), best(|t| t.add));
    let (chunk_body, salsa_body) = best_body.body;
    let salsa_same = best_same.same.1;
    // The chunkdb-only ratios are measured interleaved with each other, not with salsa
    // (whose work between trials would leave chunkdb's caches cold).
    let (mut own_body, mut own_same, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    for trial in 0..=sizes.edit_trials * 2 {
        let edits = body.next();
        let body_time = timed(&mut chunk, &edits);
        let same_time = timed(&mut chunk, &edits);
        timed(&mut chunk, &body.back);
        // Parse floor: the same parse-and-extract the parse task runs, alone.
        let started = Instant::now();
        std::hint::black_box(syntax::summarize(&edited));
        let floor_time = started.elapsed();
        if trial > 0 {
            own_body.push(body_time);
            own_same.push(same_time);
            floor.push(floor_time);
        }
    }
    let (own_body, chunk_same, floor) = (median(own_body), median(own_same), median(floor));
    let (chunk_add, salsa_add) = best_add.add;
    let mut chunk_large = ChunkIndex::load(&large);
    chunk_large.check();
    let (chunk_body_small, chunk_body_large) =
        toggle_pair(&mut chunk, &mut chunk_large, &body, sizes.edit_trials);
    drop(chunk_large);
    // salsa's own growth from the small sample to the large, with the best body-edit twin.
    let best_durabilities =
        twins.iter().find(|(name, _)| *name == best_body.name).map(|(_, d)| *d).expect("a twin's name");
    let mut salsa_large = SalsaIndex::load_with(&large, best_durabilities);
    salsa_large.check();
    let mut salsa = SalsaIndex::load_with(&small, best_durabilities);
    salsa.check();
    let (salsa_body_large, _) = toggle_pair(&mut salsa_large, &mut salsa, &body, sizes.edit_trials);
    drop((salsa_large, salsa));
    // The whole registry (its crates in the same name order, so the edited package
    // has the same index).
    let whole = sizes.whole.then(|| sample::registry_whole(5_000)).flatten().map(|whole| {
        let files = whole.file_count();
        let mut chunk_whole = ChunkIndex::load(&whole);
        chunk_whole.check();
        let (small_time, whole_time) = toggle_pair(&mut chunk, &mut chunk_whole, &body, sizes.edit_trials);
        (files, small_time, whole_time)
    });

    println!(
        "  results: the two systems' diagnostics are {}{}",
        if same_results { "identical" } else { "DIFFERENT" },
        if parallel_same { "" } else { " (salsa's parallel build: DIFFERENT)" }
    );
    println!("  {:<44} {:>12} {:>12}", "time (median)", "chunkdb ms", "salsa ms");
    let rows = [
        ("initial build, small sample", chunk_cold, salsa_cold),
        ("initial build, salsa on every core", chunk_cold, salsa_parallel_cold),
        ("function-body edit", chunk_body, salsa_body),
        ("re-submit identical text", chunk_same, salsa_same),
        ("add a file and its mod line", chunk_add, salsa_add),
        ("function-body edit, large sample", chunk_body_large, salsa_body_large),
    ];
    for (what, c, s) in rows {
        println!("  {what:<44} {:>12.3} {:>12.3}", ms(c), ms(s));
    }
    println!("  parse floor (parse and extract the edited file alone): {:.3} ms", ms(floor));
    for twin in &edits {
        let [body_counts, add_counts] = twin.counts;
        println!(
            "info salsa_twin \"{}\": body edit {:.3} ms (chunkdb {:.3}), identical text {:.3} ms, add a file {:.3} ms \
             (chunkdb {:.3}); one body edit executes {} queries and validates {} memos, one added file {} and {}",
            twin.name,
            ms(twin.body.1),
            ms(twin.body.0),
            ms(twin.same.1),
            ms(twin.add.1),
            ms(twin.add.0),
            body_counts.executed,
            body_counts.validated,
            add_counts.executed,
            add_counts.validated
        );
    }
    scripted(&small);
    let mut peaks = Vec::new();
    for system in ["none", "chunkdb", "salsa"] {
        let kib = peak(system, sizes.small);
        match kib {
            Some(kib) => println!(
                "  peak memory in a process of its own, small sample, {}: {:.1} MiB",
                if system == "none" { "texts loaded, no index" } else { system },
                kib as f64 / 1024.0
            ),
            None => println!("  peak memory, {system}: not measured (no /proc/self/status here)"),
        }
        peaks.push(kib);
    }

    // Each figure is `a / b`, its target taken from `NAMES`.
    let measured = |name: &'static str, a: Duration, b: Duration, what: &str| -> Figure {
        let (_, op, bound) =
            NAMES.iter().find(|(n, _, _)| *n == name).copied().expect("every figure is named");
        (
            name,
            Ok(a.as_secs_f64() / b.as_secs_f64()),
            op,
            bound,
            format!("{:.3} ms vs {:.3} ms {what}", ms(a), ms(b)),
        )
    };
    // The cold figures are the medians of the trials' ratios (see above).
    let cold_figure = |name: &'static str, ratio: f64, baseline: Duration, what: &str| -> Figure {
        let mut figure = measured(name, chunk_cold, baseline, what);
        figure.1 = Ok(ratio);
        figure.4 = format!("{}; median of {} trials' ratios", figure.4, sizes.cold_trials);
        figure
    };
    let cold_floor = cold_figure(
        "cold_vs_parse_floor",
        cold_floor_ratio,
        floor_cold,
        &format!(
            "(medians: chunkdb's cold build vs syn parsing the same {} files, both on {threads} threads)",
            texts.len()
        ),
    );
    let cold = cold_figure(
        "cold_vs_salsa_parallel",
        cold_parallel_ratio,
        salsa_parallel_cold,
        &format!(
            "(medians: chunkdb vs salsa, both on {threads} threads, salsa with a database handle per thread)"
        ),
    );
    vec![
        cold_floor,
        cold,
        measured(
            "edit_body_vs_salsa",
            chunk_body,
            salsa_body,
            &format!("(chunkdb vs the fastest salsa twin, \"{}\")", best_body.name),
        ),
        measured("edit_body_vs_parse_floor", own_body, floor, "(re-analysis vs parsing the file alone)"),
        measured(
            "edit_body_3k_vs_1k",
            chunk_body_large,
            chunk_body_small,
            "(large sample vs small, interleaved)",
        ),
        measured("no_change_vs_edit_body", chunk_same, own_body, "(identical text vs body edit)"),
        measured(
            "edit_add_file_vs_salsa",
            chunk_add,
            salsa_add,
            &format!("(chunkdb vs the fastest salsa twin, \"{}\")", best_add.name),
        ),
        match whole {
            Some((files, small_time, whole_time)) => measured(
                "edit_body_5k_vs_1k",
                whole_time,
                small_time,
                &format!("(the registry's whole sources, {files} files, vs the small sample, interleaved)"),
            ),
            None => unmeasured(
                "edit_body_5k_vs_1k",
                "needs the full run and at least 5,000 files in the registry",
            ),
        },
        match peaks.as_slice() {
            [Some(none), Some(chunk), Some(salsa)] if salsa > none => {
                let (chunk_own, salsa_own) = (chunk.saturating_sub(*none), salsa - none);
                figure_of(
                    "peak_memory_vs_salsa",
                    chunk_own as f64 / salsa_own as f64,
                    format!(
                        "{:.1} MiB vs {:.1} MiB of peak RSS above the {:.1} MiB both reach with the texts loaded alone",
                        chunk_own as f64 / 1024.0,
                        salsa_own as f64 / 1024.0,
                        *none as f64 / 1024.0
                    ),
                )
            }
            _ => unmeasured(
                "peak_memory_vs_salsa",
                "peak memory is read from /proc/self/status, which is missing here",
            ),
        },
    ]
}

/// A figure of [`NAMES`] with its value.
fn figure_of(name: &'static str, value: f64, detail: String) -> Figure {
    let (_, op, bound) = NAMES.iter().find(|(n, _, _)| *n == name).copied().expect("every figure is named");
    (name, Ok(value), op, bound, detail)
}

/// A figure of [`NAMES`] that could not be measured, and why.
fn unmeasured(name: &'static str, why: &str) -> Figure {
    let (_, op, bound) = NAMES.iter().find(|(n, _, _)| *n == name).copied().expect("every figure is named");
    (name, Err(why.to_owned()), op, bound, String::new())
}

/// The names, ops and bounds of the real-source figures.
pub const NAMES: &[(&str, &str, f64)] = &[
    ("cold_vs_parse_floor", "<=", 1.15),
    ("cold_vs_salsa_parallel", "<=", 0.9),
    ("edit_body_vs_salsa", "<=", 0.5),
    ("edit_body_vs_parse_floor", "<=", 1.5),
    ("edit_body_3k_vs_1k", "<=", 1.2),
    ("no_change_vs_edit_body", "<=", 0.05),
    ("edit_add_file_vs_salsa", "<=", 0.5),
    ("edit_body_5k_vs_1k", "<=", 1.2),
    ("peak_memory_vs_salsa", "<=", 0.7),
];

/// Plays the scripted session on chunkdb, replays its edits on salsa, and prints the
/// time of each step on both (one trial each).
fn scripted(sample: &Sample) {
    let (mut session, _) = Session::build(sample.clone());
    let steps = session.play();
    let mut salsa = SalsaIndex::load(sample);
    salsa.check();
    println!("  scripted session (one trial each):");
    for step in &steps {
        let salsa_time = timed(&mut salsa, &step.edits);
        println!(
            "    {:<70} chunkdb {:>8.3} ms ({} runs)  salsa {:>8.3} ms",
            truncate(&step.label, 70),
            ms(step.elapsed),
            step.runs(),
            ms(salsa_time)
        );
    }
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(width - 1).collect();
        format!("{cut}…")
    }
}

/// In a process of its own: loads the sample, builds it with `system`, plays the
/// body edit a few times, and returns the process's peak resident set in KiB.
pub fn peak_in_this_process(system: &str, files: usize) -> Option<u64> {
    let sample = sample::registry_sample(files)?;
    let (package, path, offset) = session::body_edit_target(&sample)?;
    let original = session::text_of(&sample, package, &path).to_owned();
    let edited = session::insert_at(&original, offset, session::BODY_EDIT);
    fn play(mut pipeline: impl Pipeline, package: usize, path: &str, texts: [&str; 2]) {
        pipeline.check();
        for round in 0..10 {
            pipeline.set_text(package, path, texts[round % 2]);
            pipeline.check();
        }
    }
    match system {
        "chunkdb" => play(ChunkIndex::load(&sample), package, &path, [&edited, &original]),
        "salsa" => play(SalsaIndex::load(&sample), package, &path, [&edited, &original]),
        // The baseline: the sample's texts alone.
        "none" => {}
        _ => return None,
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The names, ops and bounds of the warm-restart figures (SPEC, wave 2).
pub const RESTART_NAMES: &[(&str, &str, f64)] = &[
    ("warm_restart_vs_cold", "<=", 0.05),
    ("warm_restart_vs_salsa_persist", "<=", 0.2),
    ("first_query_after_open_vs_cold", "<=", 0.01),
    ("restart_after_patch_vs_cold", "<=", 0.06),
    ("warm_rss_vs_cold_rss", "<=", 0.5),
];

/// A figure of [`RESTART_NAMES`].
fn restart_figure(name: &'static str, value: f64, detail: String) -> Figure {
    let (_, op, bound) = RESTART_NAMES.iter().find(|(n, _, _)| *n == name).copied().expect("named");
    (name, Ok(value), op, bound, detail)
}

/// One restart from `dir`: open, answer the workspace-symbol query `probe` if any,
/// re-submit `sample`, drive; returns (time to the probe's answer, time to open,
/// re-submit and drive, task runs).
fn restart_once(sample: &Sample, dir: &std::path::Path, probe: Option<&str>) -> (Duration, Duration, usize) {
    let (session, step, restart) = Session::restart(sample.clone(), dir, probe).expect("the cache opens");
    drop(session);
    (restart.first_query, restart.open + restart.resubmit + restart.drive, step.runs())
}

/// The warm-restart figures on the small registry sample: each restart against a
/// cold in-memory build measured beside it. `rss(mode, dir)` runs a process of its
/// own and returns its resident memory in KiB once it is ready to answer.
pub fn restart_figures(sizes: Sizes, rss: impl Fn(&str, &std::path::Path) -> Option<u64>) -> Vec<Figure> {
    let missing = |why: &str| -> Vec<Figure> {
        RESTART_NAMES
            .iter()
            .map(|(name, op, bound)| (*name, Err(why.to_owned()), *op, *bound, String::new()))
            .collect()
    };
    let Some(small) = sample::registry_sample(sizes.small) else {
        return missing("the cargo registry holds too few .rs files; build the project first");
    };
    let Some((package, path, offset)) = session::body_edit_target(&small) else {
        return missing("the sample has no function with a body to edit");
    };
    let mut patched = small.clone();
    let text = session::text_of(&small, package, &path).to_owned();
    if let Some(file) = patched.packages[package].files.iter_mut().find(|(p, _)| *p == path) {
        file.1 = session::insert_at(&text, offset, session::BODY_EDIT);
    }
    let dir = std::env::temp_dir().join(format!("chunkdb-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    restart_once(&small, &dir, None);
    let cold = || {
        let started = Instant::now();
        let mut index = ChunkIndex::load(&small);
        index.check();
        started.elapsed()
    };
    // salsa's persistence: each twin (see `twins`) built, saved to a file; a restart
    // reads it back, deserializes, re-submits and checks. The figure holds against
    // the fastest.
    let twins = twins(package);
    let saved: Vec<std::path::PathBuf> =
        (0..twins.len()).map(|at| dir.with_extension(format!("salsa{at}.json"))).collect();
    for (&(_, durabilities), saved) in twins.iter().zip(&saved) {
        let mut twin = SalsaIndex::load_with(&small, durabilities);
        twin.check();
        std::fs::write(saved, twin.save()).expect("the salsa database is written");
    }
    let salsa_restart = |at: usize| {
        let started = Instant::now();
        let bytes = std::fs::read(&saved[at]).expect("the salsa database is read");
        let mut twin = SalsaIndex::restore(&bytes, &small, twins[at].1).expect("the salsa database restores");
        twin.count_executions(true);
        twin.check();
        let elapsed = started.elapsed();
        (elapsed, twin.executions())
    };
    let (mut colds, mut warms, mut firsts, mut patches) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut salsas, mut salsa_executions) = (vec![Vec::new(); twins.len()], vec![0; twins.len()]);
    let mut runs = (0, 0);
    for _ in 0..sizes.cold_trials.max(3) {
        colds.push(cold());
        for at in 0..twins.len() {
            let (salsa_time, executions) = salsa_restart(at);
            salsas[at].push(salsa_time);
            salsa_executions[at] = executions;
        }
        // Each restart as its figure defines it: the restarts measured for the
        // re-submission answer no query first (it would build trees they may not need).
        let (_, warm, warm_runs) = restart_once(&small, &dir, None);
        warms.push(warm);
        firsts.push(restart_once(&small, &dir, Some("new")).0);
        // The directory holds `small`: restart with one file changed, then back.
        let (_, patch, patch_runs) = restart_once(&patched, &dir, None);
        patches.push(patch);
        restart_once(&small, &dir, None);
        runs = (warm_runs, patch_runs);
    }
    let cold_rss = rss("cold", &dir);
    let warm_rss = rss("warm", &dir);
    let disk = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum::<u64>())
        .unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);
    let salsa_bytes: Vec<u64> =
        saved.iter().map(|saved| std::fs::metadata(saved).map_or(0, |m| m.len())).collect();
    for saved in &saved {
        let _ = std::fs::remove_file(saved);
    }
    let salsas: Vec<Duration> = salsas.into_iter().map(median).collect();
    for (at, (name, _)) in twins.iter().enumerate() {
        println!(
            "info salsa_persist_twin \"{name}\": restore {:.1} ms ({:.1} MiB of JSON, {} executions)",
            ms(salsas[at]),
            salsa_bytes[at] as f64 / (1 << 20) as f64,
            salsa_executions[at]
        );
    }
    let best = (0..twins.len()).min_by_key(|at| salsas[*at]).expect("there are twins");
    let salsa = salsas[best];
    let (cold, warm, first, patch) = (median(colds), median(warms), median(firsts), median(patches));
    let mut figures = vec![
        restart_figure(
            "warm_restart_vs_cold",
            warm.as_secs_f64() / cold.as_secs_f64(),
            format!(
                "open + re-submit {} files + drive {:.1} ms ({} task runs) vs a cold build {:.1} ms; {:.1} MiB on disk",
                small.file_count(),
                ms(warm),
                runs.0,
                ms(cold),
                disk as f64 / (1 << 20) as f64
            ),
        ),
        restart_figure(
            "warm_restart_vs_salsa_persist",
            warm.as_secs_f64() / salsa.as_secs_f64(),
            format!(
                "chunkdb's warm restart {:.1} ms vs salsa's persistence {:.1} ms, the fastest twin, \"{}\" (read {:.1} MiB \
                 of JSON, deserialize the whole database, re-submit, check: {} executions)",
                ms(warm),
                ms(salsa),
                twins[best].0,
                salsa_bytes[best] as f64 / (1 << 20) as f64,
                salsa_executions[best]
            ),
        ),
        restart_figure(
            "first_query_after_open_vs_cold",
            first.as_secs_f64() / cold.as_secs_f64(),
            format!(
                "open + one workspace-symbol query {:.1} ms vs a cold build {:.1} ms",
                ms(first),
                ms(cold)
            ),
        ),
        restart_figure(
            "restart_after_patch_vs_cold",
            patch.as_secs_f64() / cold.as_secs_f64(),
            format!(
                "open + re-submit with one file changed + drive {:.1} ms ({} task runs) vs a cold build {:.1} ms",
                ms(patch),
                runs.1,
                ms(cold)
            ),
        ),
    ];
    match (warm_rss, cold_rss) {
        (Some(warm), Some(cold)) => figures.push(restart_figure(
            "warm_rss_vs_cold_rss",
            warm as f64 / cold as f64,
            format!(
                "resident {:.1} MiB after a warm restart and one query vs {:.1} MiB after a cold build (processes of their own)",
                warm as f64 / 1024.0,
                cold as f64 / 1024.0
            ),
        )),
        _ => figures.push(("warm_rss_vs_cold_rss", Err("no /proc/self/status here".into()), "<=", 0.5, String::new())),
    }
    figures
}

/// In a process of its own: a cold build (`cold`) or a warm restart from `dir` and
/// one query (`warm`) of the small sample; returns the resident set in KiB then.
pub fn rss_in_this_process(mode: &str, dir: &std::path::Path, files: usize) -> Option<u64> {
    let sample = sample::registry_sample(files)?;
    let kept: Box<dyn std::any::Any> = match mode {
        "cold" => {
            let mut index = ChunkIndex::load(&sample);
            index.check();
            Box::new(index)
        }
        "warm" => Box::new(Session::restart(sample.clone(), dir, Some("new")).ok()?.0),
        _ => return None,
    };
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib = line.split_whitespace().nth(1)?.parse().ok();
    drop(kept);
    kib
}
