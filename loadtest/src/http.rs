//! The service's HTTP contract as the scenarios use it: authenticated requests on
//! either channel, orders, and polling an export until it is ready.

use std::time::{Duration, Instant};

use goose::goose::GooseResponse;
use goose::metrics::GooseRequestMetric;
use goose::prelude::*;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Deserialize;

use crate::context::{Context, fail};

/// The channel a request goes through, and its credentials.
#[derive(Debug, Clone, Copy)]
pub enum Channel<'a> {
    /// A citizen through Helsenorge, with a bearer token.
    Helsenorge { token: &'a str },
    /// FHI, with the API key alone.
    Fhi,
}

impl Channel<'_> {
    /// Path of the order route.
    pub fn orders(&self) -> &'static str {
        match self {
            Channel::Helsenorge { .. } => "/helsenorge/egress",
            Channel::Fhi => "/fhi/fhi-egress",
        }
    }

    /// Path of one request's result.
    pub fn result(&self, request_id: &str) -> String {
        format!("{}/{request_id}", self.orders())
    }
}

/// The answer to an order.
#[derive(Debug, Clone, Deserialize)]
pub struct Ordered {
    pub request_id: String,
}

/// An export whose result answered `200` (or, for `HEAD`, its headers).
pub struct Ready {
    pub request: GooseRequestMetric,
    pub response: Response,
    /// When the request that found it ready was sent.
    pub sent: Instant,
}

/// The outcome of polling.
pub enum Polled {
    Ready(Box<Ready>),
    /// The run ended while the export was being prepared.
    RunEnded,
}

/// A request builder for `path` with the channel's credentials.
pub fn builder(
    user: &GooseUser,
    context: &Context,
    method: GooseMethod,
    path: &str,
    channel: Channel<'_>,
) -> Result<RequestBuilder, Box<TransactionError>> {
    let builder = user
        .get_request_builder(&method, path)?
        .header("Api-Key", &context.api_key);

    Ok(match channel {
        Channel::Helsenorge { token } => builder.bearer_auth(token),
        Channel::Fhi => builder,
    })
}

/// Sends a request under `name` in Goose's metrics, expecting `expect` (any 2xx
/// when `None`).
pub async fn send(
    user: &mut GooseUser,
    builder: RequestBuilder,
    name: &str,
    expect: Option<u16>,
) -> Result<GooseResponse, Box<TransactionError>> {
    let mut request = GooseRequest::builder()
        .set_request_builder(builder)
        .name(name);
    if let Some(status) = expect {
        request = request.expect_status_code(status);
    }
    user.request(request.build()).await
}

/// The response of a request that succeeded, or the transaction's failure.
pub fn succeeded(
    goose: GooseResponse,
) -> Result<(GooseRequestMetric, Response), Box<TransactionError>> {
    let GooseResponse { request, response } = goose;

    match response {
        Ok(response) if request.success => Ok((request, response)),
        Ok(_) | Err(_) => Err(Box::new(TransactionError::RequestFailed {
            raw_request: Box::new(request),
        })),
    }
}

/// As [`succeeded`], but a `503` (the service is full) first waits what its
/// `Retry-After` asks, as a polite client would, before it counts as a failure.
pub async fn succeeded_or_wait(
    context: &Context,
    goose: GooseResponse,
) -> Result<(GooseRequestMetric, Response), Box<TransactionError>> {
    let refused = match &goose.response {
        Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
            Some(retry_after(response.headers()))
        }
        _ => None,
    };
    if let Some(asked) = refused {
        let cap = context.limits.retry_after_cap;
        sleep_within_run(context, cap.map_or(asked, |cap| asked.min(cap))).await;
    }
    succeeded(goose)
}

/// Marks a request that was answered as failed after all (its body was wrong), and
/// gives the transaction's error.
pub fn failure(
    user: &mut GooseUser,
    request: &mut GooseRequestMetric,
    reason: &str,
) -> Box<TransactionError> {
    match user.set_failure(reason, request, None, None) {
        Err(error) => error,
        Ok(()) => fail(reason),
    }
}

/// Places an order; `body` is the FHI order's JSON (Helsenorge takes none).
pub async fn order(
    user: &mut GooseUser,
    context: &Context,
    channel: Channel<'_>,
    body: Option<serde_json::Value>,
    name: &str,
) -> Result<Ordered, Box<TransactionError>> {
    let mut builder = builder(user, context, GooseMethod::Post, channel.orders(), channel)?;
    if let Some(body) = body {
        builder = builder.json(&body);
    }

    let goose = send(user, builder, name, Some(202)).await?;
    let (mut request, response) = succeeded(goose)?;

    match response.json::<Ordered>().await {
        Ok(ordered) if !ordered.request_id.is_empty() => Ok(ordered),
        Ok(_) => Err(failure(
            user,
            &mut request,
            "order answer without request_id",
        )),
        Err(e) => Err(failure(
            user,
            &mut request,
            &format!("order answer is not JSON: {e}"),
        )),
    }
}

/// Polls `path` with `method` (GET or HEAD) until it answers `200`, honouring
/// `Retry-After` between polls, within the context's bounds. `ordered` is when the
/// order was sent. A `200` GET answer is the download itself, returned unread.
pub async fn poll_until_ready(
    user: &mut GooseUser,
    context: &Context,
    method: GooseMethod,
    path: &str,
    channel: Channel<'_>,
    name: &str,
    ordered: Instant,
) -> Result<Polled, Box<TransactionError>> {
    let limits = &context.limits;

    for _ in 0..limits.max_polls {
        if context.run_ended() {
            return Ok(Polled::RunEnded);
        }
        if ordered.elapsed() > limits.ready_timeout {
            break;
        }

        let request =
            builder(user, context, method, path, channel)?.timeout(limits.download_timeout);
        let sent = Instant::now();
        let goose = send(user, request, name, None).await?;
        let (request, response) = succeeded_or_wait(context, goose).await?;

        if response.status() != StatusCode::ACCEPTED {
            return Ok(Polled::Ready(Box::new(Ready {
                request,
                response,
                sent,
            })));
        }

        let asked = retry_after(response.headers());
        let wait = limits.retry_after_cap.map_or(asked, |cap| asked.min(cap));
        drop(response.bytes().await);
        sleep_within_run(context, wait).await;
    }

    Err(fail(format!(
        "{path} was not ready within {} polls and {:?}",
        limits.max_polls, limits.ready_timeout
    )))
}

/// The wait a `202` or `503` asks for, kept between 100 ms and a minute.
pub fn retry_after(headers: &HeaderMap) -> Duration {
    let seconds = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite())
        .unwrap_or(1.0);
    Duration::from_secs_f64(seconds.clamp(0.1, 60.0))
}

/// Sleeps for `wait`, or until the run's planned end if that comes first.
pub async fn sleep_within_run(context: &Context, wait: Duration) {
    let until = Instant::now() + wait;
    let until = context.deadline.map_or(until, |d| until.min(d));
    tokio::time::sleep_until(until.into()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), Duration::from_secs(1));

        headers.insert(RETRY_AFTER, "5".parse().expect("value"));
        assert_eq!(retry_after(&headers), Duration::from_secs(5));

        headers.insert(RETRY_AFTER, "3600".parse().expect("value"));
        assert_eq!(retry_after(&headers), Duration::from_secs(60));
    }

    #[test]
    fn paths_follow_the_channel() {
        let citizen = Channel::Helsenorge { token: "t" };
        assert_eq!(citizen.result("abc"), "/helsenorge/egress/abc");
        assert_eq!(Channel::Fhi.orders(), "/fhi/fhi-egress");
    }
}
