//! The handlers: each reads what it shows (trace files, the dead-letter store) and renders one
//! template.

use std::path::PathBuf;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse as _, Response};
use jiff::Timestamp;
use minijinja::context;
use minijinja::value::{Serde, Value};
use serde::Deserialize;
use tracing::{error, info};

use super::chart;
use super::guard;
use super::state::DashboardState;
use super::view::{self, Parked, Row};
use crate::deadletter::{self, DeadLetters, Replayed};
use crate::record::Outcome;
use crate::trace::read::{self, Filter};
use crate::trace::{EventTrace, Status};

/// Most uploads listed on the front page.
const MAX_ROWS: usize = 500;

/// The stylesheet, served from the dashboard itself so the policy can refuse every other host.
const STYLE: &str = include_str!("templates/style.css");

/// `GET /?status=`.
#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    status: Option<String>,
}

/// The fields every dashboard form posts.
#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    token: String,
}

/// `GET /`: recent uploads, newest first, and the charts.
pub(super) async fn events(
    State(state): State<DashboardState>,
    Query(query): Query<ListQuery>,
) -> Response {
    let wanted = query.status.as_deref().filter(|s| !s.is_empty());
    let status = match wanted.map(|name| Status::ALL.into_iter().find(|s| s.name() == name)) {
        Some(None) => {
            let problem = Problem::new(StatusCode::BAD_REQUEST, "Unknown status", "no such status");
            return problem.page(&state);
        }
        found => found.flatten(),
    };
    let Some(dir) = state.trace_dir.clone() else {
        let text = "traces are off ([trace] enabled = false), so there is nothing to list";
        return message(&state, StatusCode::OK, "No traces", text);
    };
    let traces = match load(dir).await {
        Ok(traces) => traces,
        Err(problem) => return problem.page(&state),
    };

    // Lines older than the hour fall outside every bar.
    let charts = chart::charts(&traces, Timestamp::now());
    let kept = traces
        .iter()
        .filter(|t| status.is_none_or(|s| t.status == s));
    let rows: Vec<Row> = kept.take(MAX_ROWS).map(Row::from).collect();
    let statuses: Vec<&str> = Status::ALL.iter().map(|s| s.name()).collect();
    let ctx = context! {
        rows => Value::from(Serde(&rows)),
        statuses,
        current => wanted,
        total => traces.len(),
        charts => Value::from(Serde(&charts)),
        max_rows => MAX_ROWS,
    };
    render(&state, "events.html", ctx)
}

/// `GET /events/{id}`: one upload's trace.
pub(super) async fn event(State(state): State<DashboardState>, Path(id): Path<String>) -> Response {
    let trace = match find(&state, id).await {
        Ok(trace) => trace,
        Err(problem) => return problem.page(&state),
    };
    let ctx = context! {
        id => &trace.id,
        status => trace.status.name(),
        first_at => view::time(trace.first_at),
        last_at => view::time(trace.last_at),
        fields => Value::from(Serde(view::fields(&trace.event))),
        handlings => Value::from(Serde(view::timeline(&trace))),
    };
    render(&state, "event.html", ctx)
}

/// `GET /events/{id}/emails/{n}`: the `n`th email rendered for an upload.
pub(super) async fn email(
    State(state): State<DashboardState>,
    Path((id, n)): Path<(String, usize)>,
) -> Response {
    let trace = match find(&state, id).await {
        Ok(trace) => trace,
        Err(problem) => return problem.page(&state),
    };
    let Some((rule, email)) = view::nth_email(&trace, n) else {
        return message(
            &state,
            StatusCode::NOT_FOUND,
            "No such email",
            "this upload has no email with that number",
        );
    };
    let ctx = context! {
        id => &trace.id,
        n,
        rule,
        headers => Value::from(Serde(view::headers(email))),
        bcc => email.bcc.join(", "),
        text => &email.text,
        html => &email.html,
    };
    render(&state, "email.html", ctx)
}

/// `GET /dead-letters`.
pub(super) async fn dead_letters(State(state): State<DashboardState>) -> Response {
    dead_letter_page(&state, None).await
}

/// `POST /dead-letters/{id}/replay`: what `herald dlq replay ID` does.
pub(super) async fn replay(
    State(state): State<DashboardState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    let store = match checked(&state, &headers, &form) {
        Ok(store) => store,
        Err(problem) => return problem.page(&state),
    };
    let entry = match store.get(&id).await {
        Ok(Some(entry)) => entry,
        Ok(None) => return dead_letter_page(&state, Some((false, gone(&id)))).await,
        Err(err) => return store_failed(&err).page(&state),
    };
    let notice = match deadletter::replay(&state.pipeline, store, &entry).await {
        Ok(Replayed::Delivered { outcomes }) => {
            info!(id = %id, rule = %entry.rule, "dead letter replayed from the dashboard");
            (true, format!("replayed {id}: {}", delivered(&outcomes)))
        }
        Ok(Replayed::FailedAgain { error }) => {
            (false, format!("replay of {id} failed again, kept: {error}"))
        }
        Err(err) => return store_failed(&err).page(&state),
    };
    dead_letter_page(&state, Some(notice)).await
}

/// `POST /dead-letters/{id}/drop`: what `herald dlq drop ID` does.
pub(super) async fn drop_entry(
    State(state): State<DashboardState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    let store = match checked(&state, &headers, &form) {
        Ok(store) => store,
        Err(problem) => return problem.page(&state),
    };
    let notice = match store.remove(&id).await {
        Ok(true) => (true, format!("dropped {id}")),
        Ok(false) => (false, gone(&id)),
        Err(err) => return store_failed(&err).page(&state),
    };
    dead_letter_page(&state, Some(notice)).await
}

/// `GET /style.css`.
pub(super) async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// Any other path.
pub(super) async fn not_found(State(state): State<DashboardState>) -> Response {
    message(
        &state,
        StatusCode::NOT_FOUND,
        "Not found",
        "the dashboard has no such page",
    )
}

/// The dead-letter list, with what the last action came to when there was one.
async fn dead_letter_page(state: &DashboardState, notice: Option<(bool, String)>) -> Response {
    let Some(store) = &state.dead_letters else {
        let text = "the config has no [dead_letter] section, so nothing is parked";
        return message(state, StatusCode::OK, "No dead-letter store", text);
    };
    let entries: Vec<Parked> = match store.list().await {
        Ok(entries) => entries.iter().map(Parked::from).collect(),
        Err(err) => return store_failed(&err).page(state),
    };
    let notice = notice.map(|(ok, text)| context! { ok, text });
    let entries = Value::from(Serde(&entries));
    let ctx = context! { entries, notice, token => state.token.as_ref() };
    render(state, "dead_letters.html", ctx)
}

/// The store for a form post that passed [`guard::check_post`], or the page refusing it.
fn checked<'a>(
    state: &'a DashboardState,
    headers: &HeaderMap,
    form: &ActionForm,
) -> Result<&'a DeadLetters, Problem> {
    if let Err(refused) = guard::check_post(state, headers, &form.token) {
        info!(reason = %refused, "dashboard form post refused");
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "Refused",
            refused.to_string(),
        ));
    }
    state.dead_letters.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "No dead-letter store",
            "the config has no [dead_letter] section",
        )
    })
}

/// What each channel of a replay came to, for the notice.
fn delivered(outcomes: &[Outcome]) -> String {
    let parts: Vec<String> = outcomes
        .iter()
        .map(|outcome| match outcome {
            Outcome::Sent { receipt, .. } => {
                format!("sent via {}: {}", receipt.sender, receipt.detail)
            }
            Outcome::Duplicate { .. } => "already sent before".to_owned(),
            Outcome::Gathered { .. } => "gathered into its digest".to_owned(),
            _ => "delivered".to_owned(),
        })
        .collect();
    parts.join("; ")
}

fn gone(id: &str) -> String {
    format!("no parked notification {id} (replayed or dropped already?)")
}

/// The upload with this id (or unique id prefix), or the page saying why there is none.
async fn find(state: &DashboardState, id: String) -> Result<EventTrace, Problem> {
    let Some(dir) = state.trace_dir.clone() else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "No traces",
            "traces are off ([trace] enabled = false)",
        ));
    };
    let found = tokio::task::spawn_blocking(move || read::find(&dir, &id)).await;
    match found {
        Ok(Ok(read::Found::One(trace))) => Ok(*trace),
        Ok(Ok(read::Found::None)) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "No such upload",
            "no trace has that id",
        )),
        Ok(Ok(read::Found::Ambiguous(_))) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "No such upload",
            "several traces start with that id; give more of it",
        )),
        Ok(Err(err)) => Err(traces_failed(&err)),
        Err(err) => Err(traces_failed(&err)),
    }
}

/// Every trace in the folder, read off the async threads, or the page saying why not.
async fn load(dir: PathBuf) -> Result<Vec<EventTrace>, Problem> {
    match tokio::task::spawn_blocking(move || read::list(&dir, Filter::default())).await {
        Ok(Ok(traces)) => Ok(traces),
        Ok(Err(err)) => Err(traces_failed(&err)),
        Err(err) => Err(traces_failed(&err)),
    }
}

fn traces_failed(err: &dyn std::error::Error) -> Problem {
    error!(error = %err, "dashboard cannot read the trace folder");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Cannot read traces",
        err.to_string(),
    )
}

fn store_failed(err: &crate::store::StoreError) -> Problem {
    error!(error = %err, "dashboard cannot use the dead-letter store");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Dead-letter store failed",
        err.to_string(),
    )
}

/// A page that cannot be shown as asked, and why.
struct Problem {
    status: StatusCode,
    title: &'static str,
    text: String,
}

impl Problem {
    fn new(status: StatusCode, title: &'static str, text: impl Into<String>) -> Self {
        let text = text.into();
        Problem {
            status,
            title,
            text,
        }
    }

    /// The page saying so.
    fn page(self, state: &DashboardState) -> Response {
        message(state, self.status, self.title, &self.text)
    }
}

/// A page with a title and one line of text.
fn message(state: &DashboardState, status: StatusCode, title: &str, text: &str) -> Response {
    let mut response = render(state, "message.html", context! { title, text });
    *response.status_mut() = status;
    response
}

/// Renders a template, or answers 500 when it cannot be rendered.
fn render(state: &DashboardState, name: &str, ctx: minijinja::Value) -> Response {
    let rendered = state
        .templates
        .get_template(name)
        .and_then(|t| t.render(ctx));
    match rendered {
        Ok(page) => Html(page).into_response(),
        Err(err) => {
            error!(template = name, error = %err, "dashboard page cannot be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the dashboard page cannot be rendered",
            )
                .into_response()
        }
    }
}
