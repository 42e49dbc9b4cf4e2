//! The handlers of both channels: parse, authorize, call the ordering rules, answer.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;

use super::AppState;
use super::download;
use super::error::ApiError;
use super::fhi_body::{check_helsenorge_order, parse_fhi_order};
use crate::auth::Citizen;
use crate::domain::{Channel, PhoneNumber, RequestId};
use crate::orders::{Order, Placed};
use crate::source::access_log::Requester;
use crate::store::{RequestRecord, Status};

/// The legal means recorded for every Helsenorge order.
const HELSENORGE_LEGAL_MEANS: &str = "Innsynsoppslag fra helsenorge.no";
/// The shortest and longest wait between polls asked of a client, in seconds.
const FIRST_POLL_AFTER: i64 = 1;
const LONGEST_POLL_AFTER: i64 = 60;

/// A citizen authenticated by a Helsenorge bearer token.
pub struct Authenticated(pub Citizen);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let citizen = state.tokens.verify(header).await?;
        Ok(Authenticated(citizen))
    }
}

pub async fn helsenorge_order(
    State(state): State<AppState>,
    Authenticated(citizen): Authenticated,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check_helsenorge_order(&read_body(body, state.body_limit)?)?;
    let order = Order {
        channel: Channel::Helsenorge,
        requester: Requester {
            person_name: citizen.full_name(),
            person_id: Some(citizen.person_id),
            person_organization: None,
            legal_means: HELSENORGE_LEGAL_MEANS.to_owned(),
            phone: citizen.phone,
        },
        window: Default::default(),
    };
    place(&state, &order, &headers).await
}

pub async fn fhi_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let order = parse_fhi_order(&read_body(body, state.body_limit)?)?;
    place(&state, &order, &headers).await
}

pub async fn helsenorge_result(
    State(state): State<AppState>,
    Authenticated(citizen): Authenticated,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let request = find(&state, Channel::Helsenorge, &id, Some(&citizen.phone)).await?;
    result(&state, &request, &method, &headers).await
}

pub async fn fhi_result(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let request = find(&state, Channel::Fhi, &id, None).await?;
    result(&state, &request, &method, &headers).await
}

pub async fn helsenorge_delete(
    State(state): State<AppState>,
    Authenticated(citizen): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let request = find(&state, Channel::Helsenorge, &id, Some(&citizen.phone)).await?;
    state.orders.delete(&request).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn fhi_delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let request = find(&state, Channel::Fhi, &id, None).await?;
    state.orders.delete(&request).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn read_body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(limit)
        } else {
            ApiError::BadRequest {
                message: format!("the body could not be read: {rejection}"),
                field: None,
            }
        }
    })
}

async fn place(state: &AppState, order: &Order, headers: &HeaderMap) -> Result<Response, ApiError> {
    let request = match state.orders.place(order).await? {
        Placed::Accepted(request) => request,
        Placed::NotFound => return Err(ApiError::NotInSystem),
    };
    let url = result_url(state, headers, request.channel, request.id);
    let body = json!({
        "request_id": request.id,
        "result_url": url,
        "result_expires": request.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The absolute URL of a request's result: under `PUBLIC_BASE_URL` when set, else
/// under the `Host` (and `X-Forwarded-Proto`) the client used.
fn result_url(state: &AppState, headers: &HeaderMap, channel: Channel, id: RequestId) -> String {
    let path = match channel {
        Channel::Helsenorge => format!("/helsenorge/egress/{id}"),
        Channel::Fhi => format!("/fhi/fhi-egress/{id}"),
    };
    if let Some(base) = &state.public_base_url {
        return format!("{}{path}", base.trim_end_matches('/'));
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text("host").unwrap_or("localhost");
    let scheme = match text("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}{path}")
}

/// The request behind an id, if the caller may see it; a malformed id is as
/// unknown as any other.
async fn find(
    state: &AppState,
    channel: Channel,
    raw_id: &str,
    owner: Option<&PhoneNumber>,
) -> Result<RequestRecord, ApiError> {
    let id: RequestId = raw_id.parse().map_err(|_| ApiError::NotFound)?;
    state
        .orders
        .find(channel, id, owner)
        .await?
        .ok_or(ApiError::NotFound)
}

async fn result(
    state: &AppState,
    request: &RequestRecord,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    match request.status {
        Status::Pending => Ok(preparing(request)),
        Status::Failed => Err(ApiError::ExportFailed),
        Status::Ready => {
            download::respond(
                state.orders.store(),
                &state.download_log,
                &state.downloads,
                request,
                method,
                headers,
            )
            .await
        }
    }
}

fn preparing(request: &RequestRecord) -> Response {
    let total = request.devices.len();
    let body = json!({
        "message": format!("Not finished processing (completed {}/{total} devices)", request.completed),
        "completed": request.completed,
        "total": total,
    });
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    let age = Utc::now().signed_duration_since(request.created_at);
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(poll_after(age.num_seconds())),
    );
    response
}

/// Seconds to wait before the next poll of an export ordered `age` seconds ago: a
/// quarter of its age, between 1 and 60. Most exports are ready within a second
/// and are fetched a second later; a long one is polled ever less often, and once
/// a minute from its fourth minute on.
fn poll_after(age: i64) -> i64 {
    (age / 4).clamp(FIRST_POLL_AFTER, LONGEST_POLL_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_are_asked_for_a_quarter_of_the_age_between_a_second_and_a_minute() {
        assert_eq!(poll_after(-3), 1, "a clock behind the request's");
        assert_eq!(poll_after(0), 1);
        assert_eq!(poll_after(7), 1);
        assert_eq!(poll_after(8), 2);
        assert_eq!(poll_after(120), 30);
        assert_eq!(poll_after(240), 60);
        assert_eq!(poll_after(10 * 3600), 60);
    }
}
