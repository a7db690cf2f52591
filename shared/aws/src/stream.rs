//! The `link-mailer` function: not an HTTP route, but the consumer of the table's stream
//! (filtered to mail requests by the event source mapping in `template.yaml`), of an SQS queue
//! and of EventBridge events that storefronts publish. Each event goes to the core's
//! [`latchkey_core::link_mailer::handle_event`], which answers batches with
//! `batchItemFailures` (the mapping's `ReportBatchItemFailures`), so only the records that
//! failed are retried, with backoff, and then go to the dead-letter queue.

use std::sync::Arc;

use lambda_http::{LambdaEvent, lambda_runtime, service_fn};
use serde_json::Value;

use crate::setup;

pub use lambda_http::Error;

/// Functions that serve no route (each has its binary under `functions/` and its function in
/// `template.yaml`, as routes do).
pub const FUNCTIONS: &[&str] = &["link-mailer"];

/// The whole `main` of `link-mailer`.
pub fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("latchkey: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "link mailer stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Handles mailer events until the runtime API goes away.
pub async fn run() -> Result<(), Error> {
    setup::init_json_logging();
    let app = setup::aws_app_from_env().await.map_err(|e| {
        tracing::error!(error = %e, "link mailer could not start");
        e
    })?;
    tracing::info!(function = "link-mailer", "ready");
    let app = Arc::new(app);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let app = app.clone();
        async move {
            latchkey_core::link_mailer::handle_event(&app, &event.payload)
                .await
                .map_err(Error::from)
        }
    }))
    .await
}
