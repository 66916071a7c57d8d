//! A shorter soak run than the performance report's: an endless stream of edits,
//! file deletions and re-additions on a workspace, with garbage collection on its
//! default policy, must keep memory flat and every count bounded.

mod support;

use support::pipeline;

#[test]
fn memory_stays_flat_over_an_editing_session() {
    const FILES: usize = 40;
    const CYCLES: usize = 2_000;
    const WARM_UP: usize = 200;
    let mut baseline = None;
    let mut worst_drift: f64 = 0.0;
    let mut most_chunks = 0;
    let mut most_in_memory = 0;
    let mut most_reads = 0;
    pipeline::soak(FILES, CYCLES, |cycle, db| {
        let stats = db.stats();
        most_chunks = most_chunks.max(stats.chunks);
        most_in_memory = most_in_memory.max(stats.chunks_in_memory);
        most_reads = most_reads.max(stats.reads_tracked);
        if cycle == WARM_UP {
            baseline = Some(stats.bytes as f64);
        }
        if let Some(baseline) = baseline
            && cycle % 100 == 0
        {
            worst_drift = worst_drift.max((stats.bytes as f64 - baseline).abs() / baseline * 100.0);
        }
        if cycle == CYCLES - 1 {
            db.check_consistency().expect("indexes agree with the current versions");
            assert!(stats.gc.cycles > 0, "collection ran on its own");
            assert_eq!(stats.stale_tasks, 0);
        }
    });
    assert!(worst_drift <= 5.0, "bytes held drifted {worst_drift:.2}% after warm-up");
    // Five tasks per file, one file possibly deleted: nothing accumulates.
    assert!(most_chunks <= FILES * 5, "{most_chunks} current chunks");
    assert!(most_in_memory <= FILES * 5 + 16, "{most_in_memory} chunks in memory");
    assert!(most_reads <= FILES * 40, "{most_reads} reads filed");
}
