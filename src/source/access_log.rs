//! The access log: one row for every accepted order and every completed download.

use sqlx::PgPool;

use super::SourceError;
use crate::domain::{Channel, PhoneNumber, RequestId};

/// Whose data is ordered, by whom, and on what grounds.
#[derive(Debug, Clone)]
pub struct Requester {
    pub phone: PhoneNumber,
    pub person_name: String,
    pub person_id: Option<String>,
    pub person_organization: Option<String>,
    pub legal_means: String,
}

/// Writes the order's row. The order must not go ahead if this fails.
pub async fn log_order(
    pool: &PgPool,
    request_id: RequestId,
    channel: Channel,
    order: &Requester,
) -> Result<(), SourceError> {
    sqlx::query(
        "INSERT INTO access_log (action, request_id, phone_number, person_name, person_id,
                                 person_organization, organization, legal_means)
         VALUES ('order', $1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(request_id.as_uuid())
    .bind(order.phone.as_str())
    .bind(&order.person_name)
    .bind(&order.person_id)
    .bind(&order.person_organization)
    .bind(channel.organization())
    .bind(&order.legal_means)
    .execute(pool)
    .await?;
    Ok(())
}

/// Writes a download's row, with the same person and grounds as the order's row, so
/// that no personal data needs to be kept in Redis. Answers false when the order's
/// row is not there.
pub async fn log_download(pool: &PgPool, request_id: RequestId) -> Result<bool, SourceError> {
    let inserted = sqlx::query(
        "INSERT INTO access_log (action, request_id, phone_number, person_name, person_id,
                                 person_organization, organization, legal_means)
         SELECT 'download', request_id, phone_number, person_name, person_id,
                person_organization, organization, legal_means
         FROM access_log
         WHERE request_id = $1 AND action = 'order'
         ORDER BY id
         LIMIT 1",
    )
    .bind(request_id.as_uuid())
    .execute(pool)
    .await?;
    Ok(inserted.rows_affected() == 1)
}
