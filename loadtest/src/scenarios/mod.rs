//! The scenarios, and how a workload registers them with Goose.
//!
//! | scenario | what a user does, over and over |
//! | --- | --- |
//! | `citizen` | order through Helsenorge, poll, download and check the archive, delete it |
//! | `fhi-bulk` | order through FHI for the next phone number of the population |
//! | `download-storm` | download ready archives: whole, by byte range, or abandoned part-way |

mod citizen;
mod fhi;
mod storm;

use std::time::{Duration, Instant};

use goose::metrics::GooseRequestMetric;
use goose::prelude::*;

use crate::cli::{LoadOptions, ThinkTime, Workload};
use crate::context::Context;
use crate::download::{self, Ending, ReadPlan};
use crate::http::{self, Channel, Polled, Ready, failure};
use crate::stats::DownloadKind;

/// Registers the workload's scenarios with their weights and think time.
pub fn register(mut attack: GooseAttack, options: &LoadOptions) -> Result<GooseAttack, GooseError> {
    let think_time = options.think_time.or(match options.workload {
        Workload::Mixed => Some(ThinkTime {
            min: Duration::from_secs(1),
            max: Duration::from_secs(3),
        }),
        _ => None,
    });

    for (scenario, weight) in weighted(options)? {
        let mut scenario = scenario.set_weight(weight)?;
        if let Some(think) = think_time {
            scenario = scenario.set_wait_time(think.min, think.max)?;
        }
        attack = attack.register_scenario(scenario);
    }
    Ok(attack)
}

fn weighted(options: &LoadOptions) -> Result<Vec<(Scenario, usize)>, GooseError> {
    let all = match options.workload {
        Workload::Citizen => vec![(citizen::scenario(), 1)],
        Workload::FhiBulk => vec![(fhi::scenario(), 1)],
        Workload::DownloadStorm => vec![(storm::scenario()?, 1)],
        Workload::Mixed => vec![
            (citizen::scenario(), options.mix.citizen),
            (fhi::scenario(), options.mix.fhi),
            (storm::scenario()?, options.mix.storm),
        ],
    };
    Ok(all.into_iter().filter(|(_, weight)| *weight > 0).collect())
}

/// A Helsenorge order that has become ready.
struct ReadyOrder {
    /// The request's result path.
    path: String,
    /// When the order was sent.
    ordered: Instant,
    /// The answer that found it ready.
    ready: Box<Ready>,
}

/// Orders through `channel` and polls with `poll` until the export is ready, as
/// the requests `<prefix> order` and `<prefix> <poll_name>`. `None` when the run
/// ended first.
async fn order_until_ready(
    user: &mut GooseUser,
    context: &Context,
    channel: Channel<'_>,
    poll: GooseMethod,
    (order_name, poll_name): (&str, &str),
) -> Result<Option<ReadyOrder>, Box<TransactionError>> {
    let ordered = Instant::now();
    let order = http::order(user, context, channel, None, order_name).await?;
    let path = channel.result(&order.request_id);
    let polled =
        http::poll_until_ready(user, context, poll, &path, channel, poll_name, ordered).await?;
    Ok(match polled {
        Polled::Ready(ready) => Some(ReadyOrder {
            path,
            ordered,
            ready,
        }),
        Polled::RunEnded => None,
    })
}

/// Reads a ready archive to its last byte, checks it, and records the whole
/// download's time as `BODY <name>`; the service's own export time, from the
/// manifest, goes to `READY <channel> export`. `None` when the run ended first.
async fn complete_download(
    user: &mut GooseUser,
    context: &Context,
    ready: Ready,
    name: &str,
    rate: Option<u64>,
) -> Result<Option<download::Body>, Box<TransactionError>> {
    let Ready {
        mut request,
        response,
        sent,
    } = ready;
    let status = response.status().as_u16();
    let promised = download::content_length(response.headers());
    if status != 200 {
        return Err(failure(
            user,
            &mut request,
            &format!("{status} instead of 200"),
        ));
    }

    let plan = ReadPlan {
        rate,
        stop_after: None,
        deadline: context.deadline,
    };
    let body = match download::read(response, sent, plan).await {
        Ok(body) if body.ending == Ending::RunEnded => {
            context.stats.record_unfinished(body.received);
            return Ok(None);
        }
        Ok(body) => body,
        Err(e) => {
            let reason = format!("reading the body: {e}");
            record_body(user, name, sent.elapsed(), status, &Err(reason)).await?;
            return Err(failed(request));
        }
    };

    let checked = download::check_archive(promised, &body);
    record_body(user, name, body.elapsed, status, &checked).await?;
    if checked.is_err() {
        return Err(failed(request));
    }

    context
        .stats
        .record_download(DownloadKind::Complete, body.received, body.elapsed);
    Ok(Some(body))
}

/// Records the time from a download's request to its last byte.
async fn record_body(
    user: &mut GooseUser,
    name: &str,
    elapsed: Duration,
    status: u16,
    outcome: &Result<(), String>,
) -> TransactionResult {
    user.record_custom_request_duration(
        "BODY",
        name,
        elapsed,
        outcome.is_ok(),
        Some(status),
        outcome.as_ref().err().map(String::as_str),
    )
    .await
}

/// Records how long an export took to become ready: as the client saw it (order
/// sent to the `200`'s headers) and, when the manifest was in the tail, as the
/// service recorded it.
async fn record_ready(
    user: &mut GooseUser,
    channel: &str,
    ordered: Instant,
    answered: Instant,
    body: &download::Body,
) -> TransactionResult {
    let client = answered.duration_since(ordered);
    user.record_custom_request_duration(
        "READY",
        &format!("{channel} until-ready"),
        client,
        true,
        None,
        None,
    )
    .await?;

    if let Some(export) = download::manifest_export_time(&body.tail) {
        user.record_custom_request_duration(
            "READY",
            &format!("{channel} export"),
            export,
            true,
            None,
            None,
        )
        .await?;
    }
    Ok(())
}

/// Fails the transaction over a request whose failure is already recorded
/// elsewhere (as a `BODY` row), without counting it again.
fn failed(request: GooseRequestMetric) -> Box<TransactionError> {
    Box::new(TransactionError::RequestFailed {
        raw_request: Box::new(request),
    })
}
