//! The AWS Lambda entry point (`bootstrap`, the name the `provided.al2023` runtime runs).
//!
//! Sets up logging, loads the config and builds the sender once per container, then hands
//! every invocation to [`herald::runtime::lambda::Handler`]. A config problem stops the
//! container at init, where Lambda reports it, rather than failing every invocation.

use std::process::ExitCode;

use herald::runtime::lambda;

#[tokio::main]
async fn main() -> ExitCode {
    lambda::init_tracing();
    // The runtime library panics without Lambda's environment; say what is wrong instead.
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        tracing::error!(
            "not running under AWS Lambda (AWS_LAMBDA_RUNTIME_API is not set); \
             run one event locally with `herald invoke`"
        );
        return ExitCode::FAILURE;
    }
    let handler = match lambda::init().await {
        Ok(handler) => handler,
        Err(err) => {
            tracing::error!(error = %err, "herald cannot start");
            return ExitCode::FAILURE;
        }
    };
    match lambda::run(handler).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "lambda runtime stopped");
            ExitCode::FAILURE
        }
    }
}
