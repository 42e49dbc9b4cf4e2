//! Figures Goose does not keep: bytes downloaded, per-download throughput, and how
//! many FHI orders were first orders of their phone number in this run.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Throughput samples kept at most; later ones are counted but not sampled.
const MAX_SAMPLES: usize = 1_000_000;

/// Counters shared by every user.
#[derive(Debug, Default)]
pub struct Stats {
    complete_downloads: AtomicU64,
    ranged_downloads: AtomicU64,
    abandoned_downloads: AtomicU64,
    bytes: AtomicU64,
    throughputs: Mutex<Vec<f64>>,
    fhi_first_orders: AtomicU64,
    fhi_repeat_orders: AtomicU64,
}

/// What kind of download a body belonged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadKind {
    Complete,
    Ranged,
    Abandoned,
}

/// The counters at the end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct StatsReport {
    pub complete_downloads: u64,
    pub ranged_downloads: u64,
    pub abandoned_downloads: u64,
    /// Every body byte read, downloads cut short by the end of the run included.
    pub bytes_received: u64,
    /// Bytes per second of one complete download, first request byte to last body byte.
    pub complete_download_bytes_per_s: Percentiles,
    pub fhi_first_orders: u64,
    pub fhi_repeat_orders: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub samples: usize,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
    pub max: f64,
}

impl Stats {
    /// Counts a body read to its end (or, abandoned, as far as it was meant to be);
    /// a complete download adds a throughput sample.
    pub fn record_download(&self, kind: DownloadKind, bytes: u64, elapsed: Duration) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);

        let counter = match kind {
            DownloadKind::Complete => &self.complete_downloads,
            DownloadKind::Ranged => &self.ranged_downloads,
            DownloadKind::Abandoned => &self.abandoned_downloads,
        };
        counter.fetch_add(1, Ordering::Relaxed);

        if kind == DownloadKind::Complete && !elapsed.is_zero() {
            self.sample(bytes as f64 / elapsed.as_secs_f64());
        }
    }

    /// Counts the bytes of a body cut short by the end of the run.
    pub fn record_unfinished(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn record_fhi_order(&self, first: bool) {
        let counter = if first {
            &self.fhi_first_orders
        } else {
            &self.fhi_repeat_orders
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn report(&self) -> StatsReport {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let samples = self
            .throughputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();

        StatsReport {
            complete_downloads: load(&self.complete_downloads),
            ranged_downloads: load(&self.ranged_downloads),
            abandoned_downloads: load(&self.abandoned_downloads),
            bytes_received: load(&self.bytes),
            complete_download_bytes_per_s: percentiles(samples),
            fhi_first_orders: load(&self.fhi_first_orders),
            fhi_repeat_orders: load(&self.fhi_repeat_orders),
        }
    }

    fn sample(&self, bytes_per_second: f64) {
        let mut samples = self.throughputs.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() < MAX_SAMPLES {
            samples.push(bytes_per_second);
        }
    }
}

fn percentiles(mut samples: Vec<f64>) -> Percentiles {
    if samples.is_empty() {
        return Percentiles::default();
    }
    samples.sort_by(f64::total_cmp);
    let at = |p: usize| samples[(samples.len() - 1) * p / 100];

    Percentiles {
        samples: samples.len(),
        p10: at(10),
        p50: at(50),
        p90: at(90),
        max: at(100),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_downloads_give_throughput_samples() {
        let stats = Stats::default();

        stats.record_download(DownloadKind::Complete, 1_000, Duration::from_secs(1));
        stats.record_download(DownloadKind::Complete, 3_000, Duration::from_secs(1));
        stats.record_download(DownloadKind::Abandoned, 10, Duration::from_secs(1));

        let report = stats.report();
        assert_eq!(report.complete_downloads, 2);
        assert_eq!(report.abandoned_downloads, 1);
        assert_eq!(report.bytes_received, 4_010);
        assert_eq!(report.complete_download_bytes_per_s.samples, 2);
        assert_eq!(report.complete_download_bytes_per_s.max, 3_000.0);
    }
}
