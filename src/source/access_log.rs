//! The access log: one row for every accepted order and every completed download.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
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

/// A download that reached the archive's last byte, and when.
#[derive(Debug, Clone, Copy)]
pub struct CompletedDownload {
    pub request_id: RequestId,
    pub at: DateTime<Utc>,
}

/// Writes one row per completed download, each with the person and grounds of its
/// order's row, so that no personal data needs to be kept in Redis. Answers the
/// downloads whose order has no row, for which nothing was written.
pub async fn log_downloads(
    pool: &PgPool,
    downloads: &[CompletedDownload],
) -> Result<Vec<RequestId>, SourceError> {
    let ids: Vec<uuid::Uuid> = downloads.iter().map(|d| d.request_id.as_uuid()).collect();
    let times: Vec<DateTime<Utc>> = downloads.iter().map(|d| d.at).collect();
    let written: Vec<uuid::Uuid> = sqlx::query_scalar(
        "INSERT INTO access_log (logged_at, action, request_id, phone_number, person_name,
                                 person_id, person_organization, organization, legal_means)
         SELECT d.at, 'download', o.request_id, o.phone_number, o.person_name,
                o.person_id, o.person_organization, o.organization, o.legal_means
         FROM unnest($1::uuid[], $2::timestamptz[]) AS d(request_id, at)
         CROSS JOIN LATERAL (
             SELECT * FROM access_log a
             WHERE a.request_id = d.request_id AND a.action = 'order'
             ORDER BY a.id
             LIMIT 1
         ) o
         RETURNING request_id",
    )
    .bind(&ids)
    .bind(&times)
    .fetch_all(pool)
    .await?;
    Ok(unmatched(downloads, written))
}

/// The downloads left over once each written row has taken one of its request's.
fn unmatched(downloads: &[CompletedDownload], written: Vec<uuid::Uuid>) -> Vec<RequestId> {
    let mut rows: HashMap<uuid::Uuid, usize> = HashMap::new();
    for id in written {
        *rows.entry(id).or_default() += 1;
    }
    downloads
        .iter()
        .filter(|d| match rows.get_mut(&d.request_id.as_uuid()) {
            Some(left) if *left > 0 => {
                *left -= 1;
                false
            }
            _ => true,
        })
        .map(|d| d.request_id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn download(id: RequestId) -> CompletedDownload {
        CompletedDownload {
            request_id: id,
            at: Utc::now(),
        }
    }

    #[test]
    fn each_written_row_accounts_for_one_download() {
        let (a, b, c) = (RequestId::new(), RequestId::new(), RequestId::new());
        let downloads = [download(a), download(b), download(a), download(c)];
        let left = unmatched(&downloads, vec![a.as_uuid(), c.as_uuid()]);
        assert_eq!(left, vec![b, a]);
        assert!(
            unmatched(
                &downloads,
                vec![a.as_uuid(), a.as_uuid(), b.as_uuid(), c.as_uuid()]
            )
            .is_empty()
        );
    }
}
