//! The citizen scenario: a citizen signed in through Helsenorge orders a copy of
//! their data, polls until it is ready (honouring `Retry-After`), downloads and
//! checks the whole archive, and deletes it (unless `--keep-exports`).

use std::time::Instant;

use goose::prelude::*;

use super::{ReadyOrder, complete_download, order_until_ready, record_ready};
use crate::context::{context, idle};
use crate::http::{self, Channel};

pub fn scenario() -> Scenario {
    scenario!("citizen").register_transaction(transaction!(export).set_name("citizen export"))
}

async fn export(user: &mut GooseUser) -> TransactionResult {
    let context = context()?;
    let Some(loan) = context.citizen_pool.lend() else {
        // Every citizen is with another user.
        idle().await;
        return Ok(());
    };
    let citizen = &context.citizens[loan.index];
    let token = context.token_for(citizen)?;
    let channel = Channel::Helsenorge { token: &token };

    let names = ("helsenorge order", "helsenorge result");
    let Some(ReadyOrder {
        path,
        ordered,
        ready,
    }) = order_until_ready(user, context, channel, GooseMethod::Get, names).await?
    else {
        idle().await;
        return Ok(());
    };
    let answered = Instant::now();

    let Some(body) = complete_download(user, context, *ready, "helsenorge archive", None).await?
    else {
        return Ok(());
    };
    record_ready(user, "helsenorge", ordered, answered, &body).await?;

    if !context.keep_exports {
        delete(user, &path, channel).await?;
    }
    Ok(())
}

async fn delete(user: &mut GooseUser, path: &str, channel: Channel<'_>) -> TransactionResult {
    let context = context()?;
    let request = http::builder(user, context, GooseMethod::Delete, path, channel)?;

    let goose = http::send(user, request, "helsenorge delete", Some(204)).await?;
    http::succeeded(goose).map(|_| ())
}
