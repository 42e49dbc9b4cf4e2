//! The download-storm scenario: many users downloading ready archives at once.
//!
//! Each user first orders one of the storm's archives (through Helsenorge, for one
//! of the citizens reserved for the storm) and waits with `HEAD` until it is ready.
//! Then it loops over three kinds of download, weighted 5:3:2:
//!
//! - whole: every byte, checked like a citizen's download;
//! - ranged: `Range: bytes=a-b` with `If-Range`, expecting `206` and exactly those bytes;
//! - abandoned: part of the body is read, then the connection is dropped.
//!
//! `--storm-read-rate` makes every reader slow, to hold many downloads open at once.

use std::time::Instant;

use goose::prelude::*;
use rand::Rng;
use reqwest::header::{ETAG, IF_RANGE, RANGE};

use super::{ReadyOrder, complete_download, failed, order_until_ready, record_body};
use crate::context::{Context, context, fail, idle};
use crate::download::{self, Ending, ReadPlan};
use crate::http::{self, Channel, Ready};
use crate::stats::DownloadKind;

/// Largest byte range asked for.
const MAX_RANGE: u64 = 1024 * 1024;

/// The archive a storm user downloads.
#[derive(Debug, Clone)]
struct StormArchive {
    citizen: usize,
    path: String,
    length: u64,
    etag: String,
}

pub fn scenario() -> Result<Scenario, GooseError> {
    Ok(scenario!("download-storm")
        .register_transaction(
            transaction!(prepare)
                .set_on_start()
                .set_name("storm prepare"),
        )
        .register_transaction(transaction!(whole).set_name("storm whole").set_weight(5)?)
        .register_transaction(
            transaction!(ranged)
                .set_name("storm ranged")
                .set_weight(3)?,
        )
        .register_transaction(
            transaction!(abandoned)
                .set_name("storm abandoned")
                .set_weight(2)?,
        ))
}

/// Orders this user's archive and waits until it is ready.
async fn prepare(user: &mut GooseUser) -> TransactionResult {
    let context = context()?;
    let citizen = context.storm_pool[user.weighted_users_index % context.storm_pool.len()];
    let token = context.token_for(&context.citizens[citizen])?;
    let channel = Channel::Helsenorge { token: &token };

    let names = ("storm order", "storm head");
    let Some(ReadyOrder { path, ready, .. }) =
        order_until_ready(user, context, channel, GooseMethod::Head, names).await?
    else {
        return Ok(());
    };

    let headers = ready.response.headers();
    let length =
        download::content_length(headers).ok_or_else(|| fail("HEAD without Content-Length"))?;
    let etag = headers
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| fail("HEAD without ETag"))?
        .to_owned();

    user.set_session_data(StormArchive {
        citizen,
        path,
        length,
        etag,
    });
    Ok(())
}

/// This user's archive, prepared again if the first attempt failed.
async fn archive(user: &mut GooseUser) -> Result<Option<StormArchive>, Box<TransactionError>> {
    if user.get_session_data::<StormArchive>().is_none() {
        prepare(user).await?;
    }
    let archive = user.get_session_data::<StormArchive>().cloned();
    if archive.is_none() {
        // The run ended before the archive was ready.
        idle().await;
    }
    Ok(archive)
}

/// A GET of the archive with this user's credentials, with the download's time limit.
fn get(
    user: &GooseUser,
    context: &Context,
    archive: &StormArchive,
    token: &str,
) -> Result<reqwest::RequestBuilder, Box<TransactionError>> {
    let channel = Channel::Helsenorge { token };
    let builder = http::builder(user, context, GooseMethod::Get, &archive.path, channel)?;
    Ok(builder.timeout(context.limits.download_timeout))
}

async fn whole(user: &mut GooseUser) -> TransactionResult {
    let context = context()?;
    let Some(archive) = archive(user).await? else {
        return Ok(());
    };
    let token = context.token_for(&context.citizens[archive.citizen])?;

    let request = get(user, context, &archive, &token)?;
    let sent = Instant::now();
    let goose = http::send(user, request, "storm whole", Some(200)).await?;
    let (request, response) = http::succeeded_or_wait(context, goose).await?;

    let ready = Ready {
        request,
        response,
        sent,
    };
    complete_download(user, context, ready, "storm whole", context.storm_read_rate).await?;
    Ok(())
}

async fn ranged(user: &mut GooseUser) -> TransactionResult {
    let context = context()?;
    let Some(archive) = archive(user).await? else {
        return Ok(());
    };
    let token = context.token_for(&context.citizens[archive.citizen])?;
    let (first, last) = random_range(archive.length);

    let request = get(user, context, &archive, &token)?
        .header(RANGE, format!("bytes={first}-{last}"))
        .header(IF_RANGE, &archive.etag);
    let sent = Instant::now();
    let goose = http::send(user, request, "storm ranged", Some(206)).await?;
    let (request, response) = http::succeeded_or_wait(context, goose).await?;

    let headers = response.headers().clone();
    let plan = ReadPlan {
        rate: context.storm_read_rate,
        stop_after: None,
        deadline: context.deadline,
    };
    let body = match download::read(response, sent, plan).await {
        Ok(body) if body.ending == Ending::RunEnded => {
            context.stats.record_unfinished(body.received);
            return Ok(());
        }
        Ok(body) => body,
        Err(e) => {
            let reason = format!("reading the body: {e}");
            record_body(user, "storm ranged", sent.elapsed(), 206, &Err(reason)).await?;
            return Err(failed(request));
        }
    };

    let checked = download::check_range(&headers, &body, first, last, archive.length);
    record_body(user, "storm ranged", body.elapsed, 206, &checked).await?;
    if checked.is_err() {
        return Err(failed(request));
    }
    context
        .stats
        .record_download(DownloadKind::Ranged, body.received, body.elapsed);
    Ok(())
}

async fn abandoned(user: &mut GooseUser) -> TransactionResult {
    let context = context()?;
    let Some(archive) = archive(user).await? else {
        return Ok(());
    };
    let token = context.token_for(&context.citizens[archive.citizen])?;
    let stop_after = rand::rng().random_range(1..=(archive.length / 2).max(1));

    let request = get(user, context, &archive, &token)?;
    let sent = Instant::now();
    let goose = http::send(user, request, "storm abandoned", Some(200)).await?;
    let (request, response) = http::succeeded_or_wait(context, goose).await?;

    let plan = ReadPlan {
        rate: context.storm_read_rate,
        stop_after: Some(stop_after),
        deadline: context.deadline,
    };
    // Dropping the body at `stop_after` bytes closes the connection mid-download.
    match download::read(response, sent, plan).await {
        Ok(body) if body.ending == Ending::RunEnded => {
            context.stats.record_unfinished(body.received);
            Ok(())
        }
        Ok(body) => {
            context
                .stats
                .record_download(DownloadKind::Abandoned, body.received, body.elapsed);
            Ok(())
        }
        Err(e) => {
            let reason = format!("reading the body: {e}");
            record_body(user, "storm abandoned", sent.elapsed(), 200, &Err(reason)).await?;
            Err(failed(request))
        }
    }
}

/// A byte range `first..=last` inside an archive of `length` bytes, at most
/// [`MAX_RANGE`] long.
fn random_range(length: u64) -> (u64, u64) {
    let mut rng = rand::rng();
    let first = rng.random_range(0..length.max(1));
    let longest = (length - first).clamp(1, MAX_RANGE);
    let span = rng.random_range(1..=longest);
    (first, first + span - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_stay_inside_the_archive() {
        for length in [1, 2, 100, 5_000_000] {
            for _ in 0..1_000 {
                let (first, last) = random_range(length);
                assert!(first <= last && last < length, "{first}-{last} of {length}");
                assert!(last - first < MAX_RANGE);
            }
        }
    }
}
