//! What the dashboard reads and acts on, shared by every request.

use std::path::PathBuf;
use std::sync::Arc;

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use minijinja::{AutoEscape, Environment};

use crate::deadletter::DeadLetters;
use crate::pipeline::Pipeline;
use crate::store::StoreError;

/// The templates, compiled once; `include_str!` keeps them inside the binary.
const TEMPLATES: [(&str, &str); 6] = [
    ("layout.html", include_str!("templates/layout.html")),
    ("events.html", include_str!("templates/events.html")),
    ("event.html", include_str!("templates/event.html")),
    ("email.html", include_str!("templates/email.html")),
    (
        "dead_letters.html",
        include_str!("templates/dead_letters.html"),
    ),
    ("message.html", include_str!("templates/message.html")),
];

/// The dashboard could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The dead-letter store named by `[dead_letter]`.
    #[error("cannot open the dead-letter store for the dashboard")]
    DeadLetters(#[from] StoreError),
    /// The system's random source, for the form token.
    #[error("the system's random source failed, so the dashboard has no form token")]
    Random,
}

/// The dashboard's shared state; cheap to clone.
#[derive(Clone)]
pub struct DashboardState {
    pub(super) templates: Arc<Environment<'static>>,
    /// The trace folder; `None` when traces are off.
    pub(super) trace_dir: Option<PathBuf>,
    /// The dead-letter store; `None` without `[dead_letter]`.
    pub(super) dead_letters: Option<DeadLetters>,
    /// The running pipeline, which replays go through.
    pub(super) pipeline: Pipeline,
    /// A per-process secret every form posts back, so another site cannot post for the user.
    pub(super) token: Arc<str>,
    /// Whether only loopback `Host` names are accepted (the listener is on loopback).
    pub(super) loopback: bool,
}

impl DashboardState {
    /// The dashboard over a running pipeline: its config's trace folder and dead-letter store,
    /// and the pipeline itself for replays.
    pub fn new(pipeline: Pipeline) -> Result<Self, SetupError> {
        let config = pipeline.config();
        let trace_dir = config.trace.as_ref().map(|trace| trace.dir.clone());
        let dead_letters = config
            .dead_letter
            .as_ref()
            .map(DeadLetters::open)
            .transpose()?;
        Ok(DashboardState {
            templates: Arc::new(templates()),
            trace_dir,
            dead_letters,
            pipeline,
            token: token()?.into(),
            loopback: true,
        })
    }

    /// Accepts only loopback `Host` names when `loopback` is true (the default).
    pub(super) fn loopback(mut self, loopback: bool) -> Self {
        self.loopback = loopback;
        self
    }
}

/// The template environment. Every template escapes for HTML whatever its name, so no value
/// reaches a page as markup unless a template says so.
fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    for (name, source) in TEMPLATES {
        // The templates ship in the binary and a unit test renders each one: an error here is
        // a build defect, caught before release, so it is only logged.
        if let Err(err) = env.add_template(name, source) {
            tracing::error!(template = name, error = %err, "dashboard template does not compile");
        }
    }
    env
}

/// 128 random bits as hex.
fn token() -> Result<String, SetupError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| SetupError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
