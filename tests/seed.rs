//! The synthetic population, loaded into a real database.

mod common;

use common::*;
use insight::source::seed::{SeedError, SeedPlan, seed};

fn plan() -> SeedPlan {
    SeedPlan {
        citizens: 300,
        seed: 11,
        max_devices: 3,
        median_events: 50,
        heavy_citizens: 1,
        heavy_devices: 2,
        heavy_events: 20_000,
        gps_share: 0.7,
    }
}

async fn count(env: &TestEnv, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&env.pool).await.unwrap()
}

#[tokio::test]
async fn the_report_matches_the_rows_loaded() {
    let env = TestEnv::new().await;
    let report = seed(&env.pool, &plan()).await.unwrap();

    assert_eq!(report.citizens.len(), 301);
    assert_eq!(
        count(&env, "SELECT count(*) FROM devices").await as u64,
        report.devices
    );
    assert_eq!(
        count(&env, "SELECT count(*) FROM gps_events").await as u64,
        report.gps_events
    );
    assert_eq!(
        count(&env, "SELECT count(*) FROM bluetooth_events").await as u64,
        report.bluetooth_events
    );
    assert_eq!(
        count(&env, "SELECT count(DISTINCT phone_number) FROM devices").await,
        301
    );

    let heaviest = report.citizens.iter().max_by_key(|c| c.events).unwrap();
    assert_eq!(heaviest.events, 40_000);
    let heavy_rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM gps_events g JOIN devices d USING (uuid) WHERE d.phone_number = $1)
              + (SELECT count(*) FROM bluetooth_events b JOIN devices d USING (uuid) WHERE d.phone_number = $1)",
    )
    .bind(&heaviest.phone_number)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(heavy_rows, 40_000);
}

#[tokio::test]
async fn a_seeded_citizen_exports_to_ready() {
    let env = TestEnv::new().await;
    let report = seed(&env.pool, &plan()).await.unwrap();
    let citizen = &report.examples()[1];
    let request = env
        .order(
            insight::domain::Channel::Fhi,
            &citizen.phone_number,
            Default::default(),
        )
        .await;
    env.run_jobs().await;
    let done = env.request(request.id).await;
    assert_status(&done, insight::store::Status::Ready);
    let entries = env.store.entries(request.id).await.unwrap();
    let events: u64 = entries
        .iter()
        .map(|(_, e)| e.gps_events + e.bluetooth_contacts)
        .sum();
    assert_eq!(events, citizen.events);
}

#[tokio::test]
async fn loading_the_same_seed_twice_is_refused() {
    let env = TestEnv::new().await;
    seed(&env.pool, &plan()).await.unwrap();
    let again = seed(&env.pool, &plan()).await;
    assert!(
        matches!(again, Err(SeedError::AlreadyLoaded(11))),
        "{again:?}"
    );
    let other = SeedPlan { seed: 12, ..plan() };
    assert!(seed(&env.pool, &other).await.is_ok());
}
