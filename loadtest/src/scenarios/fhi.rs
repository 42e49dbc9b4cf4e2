//! The FHI bulk scenario: FHI orders exports for one phone number after another,
//! round robin over the population, at a steady rate when `--fhi-rate` is set.

use goose::prelude::*;
use serde_json::json;

use crate::context::{context, fail};
use crate::http::{self, Channel};

pub fn scenario() -> Scenario {
    scenario!("fhi-bulk").register_transaction(transaction!(order).set_name("fhi order"))
}

async fn order(user: &mut GooseUser) -> TransactionResult {
    let context = context()?;
    if let Some(pacer) = &context.fhi_pacer {
        pacer.wait().await;
    }

    let turn = context
        .fhi_pool
        .next()
        .ok_or_else(|| fail("the population is empty"))?;
    let citizen = &context.citizens[turn.index];
    let body = json!({
        "phone_number": citizen.phone_number,
        "person_name": "Kari Lasttest",
        "legal_means": "Smittevernloven § 7-12, load test",
        "person_organization": "Folkehelseinstituttet",
    });

    http::order(user, context, Channel::Fhi, Some(body), "fhi order").await?;
    context.stats.record_fhi_order(turn.first);
    Ok(())
}
