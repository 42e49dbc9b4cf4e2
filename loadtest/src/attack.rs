//! Running the attack: build the shared context, hand Goose the workload's scenarios,
//! run, then summarize and judge the thresholds.

use std::process::ExitCode;

use anyhow::Context as _;
use goose::config::GooseConfiguration;
use goose::prelude::*;

use crate::cli::LoadOptions;
use crate::context::{self, Context};
use crate::{report, scenarios};

/// Where the service listens unless `--host` says otherwise.
const DEFAULT_HOST: &str = "http://127.0.0.1:8080";

/// Runs the load test; the exit code is 1 when any threshold fails.
pub async fn run(options: LoadOptions, goose: GooseConfiguration) -> anyhow::Result<ExitCode> {
    let shared = Context::build(&options, &goose)?;
    print_plan(&options, &shared);
    context::install(shared)?;

    let attack = GooseAttack::initialize_with_config(goose)?
        .set_default(GooseDefault::Host, DEFAULT_HOST)?
        .set_default(GooseDefault::NoTelnet, true)?;
    let attack = scenarios::register(*attack, &options)?;

    let (metrics, goose_thresholds) = match attack.execute().await {
        Ok(metrics) => (metrics, Vec::new()),
        Err(GooseError::ThresholdsFailed { failed, metrics }) => (*metrics.0, failed),
        Err(e) => return Err(e).context("running the load test"),
    };

    let downloads = context::installed()
        .map(|c| c.stats.report())
        .context("the load-test context is missing")?;
    let summary = report::summarize(
        options.workload,
        &metrics,
        downloads,
        &options.thresholds,
        &goose_thresholds,
    );
    summary.print();
    if let Some(path) = &options.summary_file {
        summary.write(path)?;
    }

    Ok(if summary.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_plan(options: &LoadOptions, shared: &Context) {
    println!(
        "insight load test: workload {}, {} citizens in the population ({} for citizens, {} for FHI, {} storm archives)",
        options.workload.name(),
        shared.citizens.len(),
        shared.citizen_pool.len(),
        shared.fhi_pool.len(),
        shared.storm_pool.len(),
    );
}
