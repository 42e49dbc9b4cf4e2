//! The run's summary, and the thresholds judged on it.
//!
//! Goose writes the full HTML and JSON reports; this adds what the capacity
//! command needs at a glance (order rate and latency, time until ready, bytes per
//! second of downloads) and the verdict of the `--max-*` thresholds.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use goose::metrics::{GooseMetrics, GooseRequestMetricAggregate};
use goose::threshold::ThresholdResult;
use serde::Serialize;

use crate::cli::{Thresholds, Workload};
use crate::stats::StatsReport;

/// Everything worth keeping from a run, in one JSON document.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub workload: &'static str,
    /// Seconds measured (after the ramp up, as in Goose's reports).
    pub duration_s: usize,
    pub users: usize,
    pub requests: BTreeMap<String, RequestSummary>,
    pub orders: OrderSummary,
    pub downloads: StatsReport,
    pub failed_requests: u64,
    pub transaction_errors: u64,
    pub error_rate_pct: f64,
    pub thresholds: Vec<Verdict>,
    pub passed: bool,
}

/// One request row (`<METHOD> <name>`; `BODY` rows time a download to its last
/// byte, `READY` rows the time until an export was ready).
#[derive(Debug, Serialize)]
pub struct RequestSummary {
    pub count: usize,
    pub failures: usize,
    pub per_second: f64,
    pub avg_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub status_codes: BTreeMap<u16, usize>,
}

/// All orders (every `POST`) together.
#[derive(Debug, Default, Serialize)]
pub struct OrderSummary {
    pub count: usize,
    pub per_second: f64,
    /// The highest 95th and 99th percentile among the order requests.
    pub worst_p95_ms: f64,
    pub worst_p99_ms: f64,
}

/// One threshold and what was observed.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub rule: String,
    pub observed: String,
    pub passed: bool,
}

/// Builds the summary of a run and judges the thresholds (Goose's own `--threshold`
/// results included).
pub fn summarize(
    workload: Workload,
    metrics: &GooseMetrics,
    downloads: StatsReport,
    thresholds: &Thresholds,
    goose_thresholds: &[ThresholdResult],
) -> Summary {
    let duration = metrics.duration.max(1) as f64;
    let requests: BTreeMap<String, RequestSummary> = metrics
        .requests
        .iter()
        .map(|(key, aggregate)| (key.clone(), request_summary(aggregate, duration)))
        .collect();

    let mut summary = Summary {
        workload: workload.name(),
        duration_s: metrics.duration,
        users: metrics.maximum_users,
        orders: order_summary(&requests, duration),
        failed_requests: requests.values().map(|r| r.failures as u64).sum(),
        transaction_errors: metrics
            .transaction_errors
            .values()
            .map(|e| e.occurrences as u64)
            .sum(),
        error_rate_pct: error_rate(&requests),
        requests,
        downloads,
        thresholds: Vec::new(),
        passed: false,
    };

    summary.thresholds = judge(&summary, thresholds);
    summary
        .thresholds
        .extend(goose_thresholds.iter().map(|t| Verdict {
            rule: format!("goose: {}", t.rule),
            observed: t.observed.clone(),
            passed: t.passed,
        }));
    summary.passed = summary.thresholds.iter().all(|v| v.passed);
    summary
}

fn request_summary(aggregate: &GooseRequestMetricAggregate, duration: f64) -> RequestSummary {
    let times = &aggregate.raw_data;
    let ms = |us: u64| us as f64 / 1000.0;
    let count = aggregate.success_count + aggregate.fail_count;
    // Goose takes a percentile as a fraction (0.95), not as a percent.

    RequestSummary {
        count,
        failures: aggregate.fail_count,
        per_second: count as f64 / duration,
        avg_ms: if times.counter > 0 {
            times.average_ms()
        } else {
            0.0
        },
        p50_ms: ms(times.percentile_us(0.50)),
        p95_ms: ms(times.percentile_us(0.95)),
        p99_ms: ms(times.percentile_us(0.99)),
        max_ms: ms(times.maximum_time_us),
        status_codes: aggregate
            .status_code_counts
            .iter()
            .map(|(code, count)| (*code, *count))
            .collect(),
    }
}

fn order_summary(requests: &BTreeMap<String, RequestSummary>, duration: f64) -> OrderSummary {
    let orders: Vec<&RequestSummary> = orders(requests).map(|(_, r)| r).collect();
    let count = orders.iter().map(|r| r.count).sum();

    OrderSummary {
        count,
        per_second: count as f64 / duration,
        worst_p95_ms: orders.iter().map(|r| r.p95_ms).fold(0.0, f64::max),
        worst_p99_ms: orders.iter().map(|r| r.p99_ms).fold(0.0, f64::max),
    }
}

/// The order rows: every `POST`.
fn orders(
    requests: &BTreeMap<String, RequestSummary>,
) -> impl Iterator<Item = (&String, &RequestSummary)> {
    requests.iter().filter(|(key, _)| key.starts_with("POST "))
}

fn error_rate(requests: &BTreeMap<String, RequestSummary>) -> f64 {
    let total: usize = requests.values().map(|r| r.count).sum();
    let failed: usize = requests.values().map(|r| r.failures).sum();
    if total == 0 {
        return 0.0;
    }
    failed as f64 * 100.0 / total as f64
}

fn judge(summary: &Summary, limits: &Thresholds) -> Vec<Verdict> {
    let mut verdicts = vec![at_least_one_request(summary)];

    for (key, order) in orders(&summary.requests) {
        verdicts.push(at_most(
            &format!("p95 of {key}"),
            order.p95_ms,
            limits.max_order_p95,
            "ms",
        ));
        if let Some(limit) = limits.max_order_p99 {
            verdicts.push(at_most(&format!("p99 of {key}"), order.p99_ms, limit, "ms"));
        }
    }

    if let Some(limit) = limits.max_ready_p95 {
        let ready = summary
            .requests
            .iter()
            .filter(|(key, _)| key.starts_with("READY ") && key.ends_with("until-ready"));
        for (key, row) in ready {
            verdicts.push(at_most(
                &format!("p95 of {key}"),
                row.p95_ms / 1000.0,
                limit,
                "s",
            ));
        }
    }

    verdicts.push(at_most(
        "error rate",
        summary.error_rate_pct,
        limits.max_error_rate,
        "%",
    ));
    let failures = summary.failed_requests + summary.transaction_errors;
    verdicts.push(at_most(
        "failed requests and transactions",
        failures as f64,
        limits.max_failures as f64,
        "",
    ));
    verdicts
}

fn at_least_one_request(summary: &Summary) -> Verdict {
    let count: usize = summary.requests.values().map(|r| r.count).sum();
    Verdict {
        rule: "at least one request measured".into(),
        observed: count.to_string(),
        passed: count > 0,
    }
}

fn at_most(what: &str, observed: f64, limit: f64, unit: &str) -> Verdict {
    Verdict {
        rule: format!("{what} <= {limit}{unit}"),
        observed: format!("{observed:.2}{unit}"),
        passed: observed <= limit,
    }
}

impl Summary {
    /// Writes the summary as pretty JSON.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(self).context("encoding the summary")?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
    }

    /// A few lines for the console.
    pub fn print(&self) {
        println!("\n=== insight load test: {} ===", self.workload);
        println!(
            "{} s measured, {} users; orders: {} ({:.1}/s, worst p95 {:.1} ms, worst p99 {:.1} ms)",
            self.duration_s,
            self.users,
            self.orders.count,
            self.orders.per_second,
            self.orders.worst_p95_ms,
            self.orders.worst_p99_ms
        );

        let downloads = &self.downloads;
        let rate = &downloads.complete_download_bytes_per_s;
        println!(
            "downloads: {} whole, {} ranged, {} abandoned, {:.1} MiB received; \
             whole-download speed p50 {:.1} MiB/s (p10 {:.1})",
            downloads.complete_downloads,
            downloads.ranged_downloads,
            downloads.abandoned_downloads,
            downloads.bytes_received as f64 / MIB,
            rate.p50 / MIB,
            rate.p10 / MIB
        );
        for (key, row) in self
            .requests
            .iter()
            .filter(|(k, _)| k.starts_with("READY "))
        {
            println!(
                "{key}: p50 {:.2} s, p95 {:.2} s, max {:.2} s",
                row.p50_ms / 1000.0,
                row.p95_ms / 1000.0,
                row.max_ms / 1000.0
            );
        }

        for verdict in &self.thresholds {
            let mark = if verdict.passed { "pass" } else { "FAIL" };
            println!("[{mark}] {}: observed {}", verdict.rule, verdict.observed);
        }
        println!("{}", if self.passed { "PASSED" } else { "FAILED" });
    }
}

const MIB: f64 = 1024.0 * 1024.0;

#[cfg(test)]
mod tests {
    use super::*;

    fn row(count: usize, failures: usize, p95_ms: f64) -> RequestSummary {
        RequestSummary {
            count,
            failures,
            per_second: 0.0,
            avg_ms: 0.0,
            p50_ms: 0.0,
            p95_ms,
            p99_ms: p95_ms,
            max_ms: p95_ms,
            status_codes: BTreeMap::new(),
        }
    }

    fn summary(requests: Vec<(&str, RequestSummary)>) -> Summary {
        let requests: BTreeMap<String, RequestSummary> = requests
            .into_iter()
            .map(|(k, r)| (k.to_owned(), r))
            .collect();
        Summary {
            workload: "test",
            duration_s: 10,
            users: 1,
            orders: order_summary(&requests, 10.0),
            failed_requests: requests.values().map(|r| r.failures as u64).sum(),
            transaction_errors: 0,
            error_rate_pct: error_rate(&requests),
            requests,
            downloads: crate::stats::Stats::default().report(),
            thresholds: Vec::new(),
            passed: false,
        }
    }

    fn limits() -> Thresholds {
        Thresholds {
            max_order_p95: 100.0,
            max_order_p99: None,
            max_ready_p95: None,
            max_error_rate: 1.0,
            max_failures: 0,
        }
    }

    #[test]
    fn slow_orders_fail_and_fast_ones_pass() {
        let fast = summary(vec![("POST fhi order", row(100, 0, 20.0))]);
        let slow = summary(vec![("POST fhi order", row(100, 0, 200.0))]);

        assert!(judge(&fast, &limits()).iter().all(|v| v.passed));
        assert!(!judge(&slow, &limits()).iter().all(|v| v.passed));
    }

    #[test]
    fn failures_and_empty_runs_fail() {
        let failing = summary(vec![("GET storm whole", row(100, 1, 1.0))]);
        let empty = summary(vec![]);

        assert!(!judge(&failing, &limits()).iter().all(|v| v.passed));
        assert!(!judge(&empty, &limits()).iter().all(|v| v.passed));
    }

    #[test]
    fn orders_are_the_posts() {
        let summary = summary(vec![
            ("POST fhi order", row(30, 0, 10.0)),
            ("POST helsenorge order", row(10, 0, 40.0)),
            ("GET helsenorge result", row(500, 0, 90.0)),
        ]);

        assert_eq!(summary.orders.count, 40);
        assert_eq!(summary.orders.per_second, 4.0);
        assert_eq!(summary.orders.worst_p95_ms, 40.0);
    }
}
