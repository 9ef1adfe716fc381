//! Optional latency breakdown of the write path, for tracing where a slow request spends its time.
//!
//! Off unless `FLOTILLA_STORE_TIMINGS` names a file. Then every [`record`]ed duration is kept per stage, and
//! [`dump`] (the SQLite writer calls it once it has been idle for a second, i.e. after each burst of load)
//! appends one line per stage with its count and percentiles to that file and starts over. It is a
//! diagnostic for benchmarks (`scripts/bench-api` passes its environment to the server), so it favours
//! simplicity over cost: when enabled, every sample takes a global lock.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Samples per stage, in microseconds.
type Samples = BTreeMap<&'static str, Vec<u64>>;

struct Sink {
    path: std::path::PathBuf,
    samples: Mutex<Samples>,
}

fn sink() -> Option<&'static Sink> {
    static SINK: OnceLock<Option<Sink>> = OnceLock::new();
    SINK.get_or_init(|| {
        let path = std::env::var_os("FLOTILLA_STORE_TIMINGS").filter(|p| !p.is_empty())?;
        Some(Sink { path: path.into(), samples: Mutex::new(Samples::new()) })
    })
    .as_ref()
}

/// Whether timings are being collected (so callers can skip taking clocks when they are not).
pub fn enabled() -> bool {
    sink().is_some()
}

/// Records one duration of `stage`.
pub fn record(stage: &'static str, took: Duration) {
    if let Some(sink) = sink() {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        sink.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(stage).or_default().push(micros);
    }
}

/// [`dump`]s if at least a second has passed since the last dump, so each dump covers about one second.
pub fn maybe_dump() {
    static LAST: Mutex<Option<std::time::Instant>> = Mutex::new(None);
    if sink().is_none() {
        return;
    }
    let mut last = LAST.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = std::time::Instant::now();
    if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
        *last = Some(now);
        drop(last);
        dump();
    }
}

/// Appends the percentiles of everything recorded since the last dump to the file, then forgets them.
pub fn dump() {
    let Some(sink) = sink() else { return };
    let samples = std::mem::take(&mut *sink.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    if samples.is_empty() {
        return;
    }
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut out = format!("-- {:.1}\n", stamp.as_secs_f64());
    for (stage, mut values) in samples {
        values.sort_unstable();
        let at = |p: f64| values[((values.len() - 1) as f64 * p / 100.0).round() as usize] as f64 / 1e3;
        let total: u64 = values.iter().sum();
        out.push_str(&format!(
            "{stage:<24} n={:<7} p50={:>8.3} p90={:>8.3} p99={:>8.3} p99.9={:>8.3} max={:>8.3} ms sum={:.1} ms\n",
            values.len(),
            at(50.0),
            at(90.0),
            at(99.0),
            at(99.9),
            at(100.0),
            total as f64 / 1e3
        ));
    }
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(&sink.path) {
        let _ = file.write_all(out.as_bytes());
    }
}
