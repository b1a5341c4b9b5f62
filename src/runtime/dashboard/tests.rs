//! Router-level tests: every page driven with `oneshot` over real trace files and a real
//! dead-letter store in a temporary folder; emails kept in memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt as _;

use super::*;
use crate::config::{self, Origin};
use crate::deadletter::DeadLetters;
use crate::dedupe::MemoryStore;
use crate::deliver::memory::MemorySender;
use crate::deliver::{DeliveryError, Email, SendFuture, Sender};
use crate::event::ObjectCreated;
use crate::pipeline::{Delivery, Pipeline};
use crate::trace::{self, TraceLog};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const PUT: &[u8] = include_bytes!("../../../tests/fixtures/s3/put.json");

/// A key with markup, a template expression and a header break in it.
const HOSTILE_KEY: &str = "in/<script>alert(1)</script>{{ 7*7 }}\r\nBcc: x@evil.example.pdf";

/// A sender that refuses for good while `refuse` is set, and keeps emails otherwise.
#[derive(Default)]
struct Switch {
    refuse: AtomicBool,
    kept: MemorySender,
}

impl Sender for Switch {
    fn name(&self) -> &'static str {
        "switch"
    }

    fn send<'a>(&'a self, email: &'a Email) -> SendFuture<'a> {
        if self.refuse.load(Ordering::SeqCst) {
            let err = DeliveryError::Permanent {
                sender: "switch",
                reason: "550 mailbox unavailable".to_owned(),
                source: None,
            };
            return Box::pin(async move { Err(err) });
        }
        self.kept.send(email)
    }
}

/// A dashboard over a pipeline with traces and a dead-letter store in `dir`.
struct Fixture {
    app: Router,
    pipeline: Pipeline,
    log: TraceLog,
    sender: Arc<Switch>,
    store: DeadLetters,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Result<Self, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().display();
        let toml = format!(
            r#"
[sender]
type = "outbox"
from = "Herald <herald@example.com>"

[trace]
dir = "{root}/traces"

[dead_letter]
path = "{root}/state.redb"

[[rule]]
name = "invoices"
prefix = "invoices/"
to = ["Billing <billing@example.com>"]
bcc = ["audit@example.com"]
subject = "New invoice: {{{{ object.key }}}}"
text = "Hello, {{{{ object.name }}}} arrived."
html = "<p>Hello, <b>{{{{ object.name }}}}</b> arrived.</p>"

[[rule]]
name = "hostile"
prefix = "in/"
to = ["team@example.com"]
subject = "Got {{{{ object.key }}}}"
html = "<p>{{{{ object.key }}}}</p>"
"#
        );
        let config = Arc::new(config::validate::parse(&toml, Origin::BuiltIn, &|_| None)?);
        let settings = config.trace.clone().ok_or("traces are on by default")?;
        let log = TraceLog::start(settings)?;
        let dead_letter = config
            .dead_letter
            .clone()
            .ok_or("dead letters configured")?;
        let store = DeadLetters::open(&dead_letter)?;
        let sender = Arc::new(Switch::default());
        let dedupe = Arc::new(MemoryStore::new(Duration::from_secs(60)));
        let pipeline = Pipeline::new(config, Delivery::Send(sender.clone()))
            .with_dedupe(dedupe)
            .with_trace(log.clone())
            .with_dead_letters(store.clone());
        let app = router(DashboardState::new(pipeline.clone())?);
        Ok(Fixture {
            app,
            pipeline,
            log,
            sender,
            store,
            _dir: dir,
        })
    }

    /// Handles an upload of `key` and waits until its trace line is written; returns its id.
    async fn upload(&self, key: &str) -> Result<String, Box<dyn std::error::Error>> {
        let event = event(key)?;
        self.pipeline.handle_event(0, &event).await;
        self.log.flush();
        Ok(trace::event_id(&event))
    }

    async fn get(&self, path: &str) -> Result<Answer, Box<dyn std::error::Error>> {
        call(&self.app, loopback(Request::get(path)).body(Body::empty())?).await
    }
}

/// The fixture's upload with another key (and so another trace id).
fn event(key: &str) -> Result<ObjectCreated, Box<dyn std::error::Error>> {
    let crate::sources::Payload::Records(mut records) = crate::sources::parse(PUT)? else {
        return Err("not records".into());
    };
    let crate::sources::Record::Created(mut event) = records.remove(0)? else {
        return Err("not an upload".into());
    };
    event.key = key.to_owned();
    Ok(event)
}

/// A response as status, headers and body text.
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn call(app: &Router, request: Request<Body>) -> Result<Answer, Box<dyn std::error::Error>> {
    let response = app.clone().oneshot(request).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), usize::MAX).await?;
    Ok(Answer {
        status,
        headers,
        body: String::from_utf8(body.to_vec())?,
    })
}

fn loopback(request: axum::http::request::Builder) -> axum::http::request::Builder {
    request.header(header::HOST, "127.0.0.1:9001")
}

/// A form post as a browser sends it from a page whose site is `site`.
fn post_from(path: &str, site: &str) -> axum::http::request::Builder {
    loopback(Request::post(path))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", site)
        .header(header::ORIGIN, "http://127.0.0.1:9001")
}

/// A form post as a browser sends it from the dashboard's own page.
fn form_post(path: &str) -> axum::http::request::Builder {
    post_from(path, "same-origin")
}

/// `text` as the templates write it into a page.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

/// The form token the dead-letter page carries.
fn token_of(page: &str) -> Result<String, Box<dyn std::error::Error>> {
    let start = page
        .find(r#"name="token" value=""#)
        .ok_or("no token field")?
        + 20;
    let len = page[start..].find('"').ok_or("unterminated token")?;
    Ok(page[start..start + len].to_owned())
}

#[tokio::test]
async fn the_front_page_lists_uploads_newest_first_and_filters_by_status() -> TestResult {
    let fixture = Fixture::new()?;
    let sent = fixture.upload("invoices/a.pdf").await?;
    fixture.sender.refuse.store(true, Ordering::SeqCst);
    let failed = fixture.upload("invoices/b.pdf").await?;

    let page = fixture.get("/").await?;
    assert_eq!(page.status, StatusCode::OK);
    let (at_failed, at_sent) = (page.body.find(&failed), page.body.find(&sent));
    assert!(at_failed.is_some() && at_sent.is_some(), "{}", page.body);
    assert!(at_failed < at_sent, "newest first: {}", page.body);
    assert!(page.body.contains(&escaped("invoices/a.pdf")) && page.body.contains("48213"));
    // Both charts are drawn, with this minute's bars.
    assert!(page.body.contains("<svg") && page.body.contains(r#"class="failed""#));
    assert!(
        page.body.contains("1 uploads, 0 min ago") || page.body.contains("2 uploads, 0 min ago")
    );

    let only_failed = fixture.get("/?status=failed").await?;
    assert!(only_failed.body.contains(&failed));
    assert!(!only_failed.body.contains(&sent), "{}", only_failed.body);
    let bogus = fixture.get("/?status=bogus").await?;
    assert_eq!(bogus.status, StatusCode::BAD_REQUEST);
    Ok(())
}

#[tokio::test]
async fn every_page_carries_a_policy_that_allows_no_script() -> TestResult {
    let fixture = Fixture::new()?;
    let id = fixture.upload("invoices/a.pdf").await?;
    let paths = [
        "/".to_owned(),
        format!("/events/{id}"),
        format!("/events/{id}/emails/1"),
        "/dead-letters".to_owned(),
        "/no/such/page".to_owned(),
    ];
    for path in paths {
        let page = fixture.get(&path).await?;
        let policy = page.headers.get(header::CONTENT_SECURITY_POLICY);
        let policy = policy.and_then(|p| p.to_str().ok()).unwrap_or_default();
        assert!(
            policy.starts_with("default-src 'none'"),
            "{path}: {policy:?}"
        );
        assert!(!policy.contains("script-src"), "{path}: {policy}");
        assert!(!page.body.contains("<script"), "{path}: {}", page.body);
    }
    Ok(())
}

#[tokio::test]
async fn the_trace_page_shows_the_parse_the_rules_the_email_and_the_delivery() -> TestResult {
    let fixture = Fixture::new()?;
    let id = fixture.upload("invoices/a.pdf").await?;
    let page = fixture.get(&format!("/events/{id}")).await?;
    assert_eq!(page.status, StatusCode::OK);
    for expected in [
        "acme-uploads",
        "203.0.113.24",
        "rules: invoices",
        "New invoice: invoices/a.pdf",
        "via memory: kept as email 1",
    ] {
        let expected = escaped(expected);
        assert!(
            page.body.contains(&expected),
            "{expected:?} missing: {}",
            page.body
        );
    }

    assert!(
        page.body.contains(&format!("/events/{id}/emails/1")),
        "{}",
        page.body
    );

    let unmatched = fixture.upload("other/x.txt").await?;
    let page = fixture.get(&format!("/events/{unmatched}")).await?;
    assert!(page.body.contains("no rule matched"), "{}", page.body);
    assert!(page.body.contains("closest rule"), "{}", page.body);

    let missing = fixture.get("/events/0000000000").await?;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn the_email_page_shows_headers_text_and_html_in_a_scriptless_sandbox() -> TestResult {
    let fixture = Fixture::new()?;
    let id = fixture.upload("invoices/a.pdf").await?;
    let page = fixture.get(&format!("/events/{id}/emails/1")).await?;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    assert!(
        body.contains("Billing &lt;billing@example.com&gt;"),
        "{body}"
    );
    assert!(
        body.contains("audit@example.com <em>(envelope only"),
        "{body}"
    );
    assert!(
        body.contains("<pre class=\"text-part\">Hello, a.pdf arrived.</pre>"),
        "{body}"
    );
    let frame = body.find("<iframe").ok_or("no frame")?;
    let frame = &body[frame..body[frame..].find('>').ok_or("open frame")? + frame];
    assert!(frame.contains(" sandbox srcdoc=\""), "{frame}");
    assert!(!frame.contains("allow-"), "{frame}");
    // The HTML part is an attribute value: its markup arrives escaped, to be parsed in the frame.
    assert!(frame.contains("&lt;b&gt;a.pdf&lt;&#x2f;b&gt;"), "{frame}");

    let missing = fixture.get(&format!("/events/{id}/emails/2")).await?;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn a_hostile_key_is_text_on_every_page() -> TestResult {
    let fixture = Fixture::new()?;
    let id = fixture.upload(HOSTILE_KEY).await?;
    for path in [
        "/".to_owned(),
        format!("/events/{id}"),
        format!("/events/{id}/emails/1"),
    ] {
        let page = fixture.get(&path).await?;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        let body = &page.body;
        assert!(!body.contains("<script>"), "{path}: {body}");
        assert!(
            body.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{path}: {body}"
        );
        // Shown as written, never evaluated.
        assert!(body.contains("{{ 7*7 }}"), "{path}: {body}");
        assert!(!body.contains("\r\nBcc"), "{path}: {body}");
    }
    // Where the key is listed, its line break is shown as an escape.
    let listed = fixture.get("/").await?;
    let shown = escaped(r"{{ 7*7 }}\r\nBcc: x@evil.example.pdf");
    assert!(listed.body.contains(&shown), "{}", listed.body);
    Ok(())
}

#[tokio::test]
async fn the_replay_button_delivers_a_dead_letter_and_removes_it() -> TestResult {
    let fixture = Fixture::new()?;
    fixture.sender.refuse.store(true, Ordering::SeqCst);
    let id = fixture.upload("invoices/late.pdf").await?;
    let entries = fixture.store.list().await?;
    assert_eq!(entries.len(), 1);
    let entry = entries[0].id.clone();

    let page = fixture.get("/dead-letters").await?;
    assert!(page.body.contains(&entry) && page.body.contains("550 mailbox unavailable"));
    assert!(
        page.body.contains(&format!("/events/{id}")),
        "{}",
        page.body
    );
    let token = token_of(&page.body)?;

    fixture.sender.refuse.store(false, Ordering::SeqCst);
    let path = format!("/dead-letters/{entry}/replay");
    let request = form_post(&path).body(Body::from(format!("token={token}")))?;
    let replayed = call(&fixture.app, request).await?;
    assert_eq!(replayed.status, StatusCode::OK, "{}", replayed.body);
    assert!(
        replayed
            .body
            .contains(&format!("replayed {entry}: sent via memory")),
        "{}",
        replayed.body
    );
    assert!(
        replayed.body.contains("Nothing is parked."),
        "{}",
        replayed.body
    );
    assert!(fixture.store.list().await?.is_empty());
    assert_eq!(fixture.sender.kept.sent().len(), 1);

    let again = call(
        &fixture.app,
        form_post(&path).body(Body::from(format!("token={token}")))?,
    )
    .await?;
    assert!(
        again.body.contains("no parked notification"),
        "{}",
        again.body
    );
    assert_eq!(fixture.sender.kept.sent().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_replay_that_fails_again_keeps_the_entry_and_says_so() -> TestResult {
    let fixture = Fixture::new()?;
    fixture.sender.refuse.store(true, Ordering::SeqCst);
    fixture.upload("invoices/late.pdf").await?;
    let entry = fixture.store.list().await?.remove(0);
    let token = token_of(&fixture.get("/dead-letters").await?.body)?;

    let path = format!("/dead-letters/{}/replay", entry.id);
    let request = form_post(&path).body(Body::from(format!("token={token}")))?;
    let answer = call(&fixture.app, request).await?;
    assert!(
        answer.body.contains("failed again, kept: "),
        "{}",
        answer.body
    );
    assert!(
        answer.body.contains("550 mailbox unavailable"),
        "{}",
        answer.body
    );
    let kept = fixture.store.list().await?;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].attempts, 2, "one more attempt, counted once");
    Ok(())
}

#[tokio::test]
async fn the_drop_button_removes_without_sending() -> TestResult {
    let fixture = Fixture::new()?;
    fixture.sender.refuse.store(true, Ordering::SeqCst);
    fixture.upload("invoices/late.pdf").await?;
    let entry = fixture.store.list().await?.remove(0);
    let token = token_of(&fixture.get("/dead-letters").await?.body)?;
    fixture.sender.refuse.store(false, Ordering::SeqCst);

    let path = format!("/dead-letters/{}/drop", entry.id);
    let answer = call(
        &fixture.app,
        form_post(&path).body(Body::from(format!("token={token}")))?,
    )
    .await?;
    assert!(
        answer.body.contains(&format!("dropped {}", entry.id)),
        "{}",
        answer.body
    );
    assert!(fixture.store.list().await?.is_empty());
    assert!(fixture.sender.kept.sent().is_empty());
    Ok(())
}

#[tokio::test]
async fn cross_site_and_tokenless_posts_are_refused() -> TestResult {
    let fixture = Fixture::new()?;
    fixture.sender.refuse.store(true, Ordering::SeqCst);
    fixture.upload("invoices/late.pdf").await?;
    let entry = fixture.store.list().await?.remove(0);
    let token = token_of(&fixture.get("/dead-letters").await?.body)?;
    fixture.sender.refuse.store(false, Ordering::SeqCst);
    let path = format!("/dead-letters/{}/replay", entry.id);
    let form = || Body::from(format!("token={token}"));

    let cross_site = post_from(&path, "cross-site").body(form())?;
    let same_site = post_from(&path, "same-site").body(form())?;
    let wrong_origin = loopback(Request::post(&path))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ORIGIN, "http://evil.example")
        .body(form())?;
    let no_token = form_post(&path).body(Body::from("token=0000"))?;
    let empty = form_post(&path).body(Body::empty())?;
    for request in [cross_site, same_site, wrong_origin, no_token, empty] {
        let answer = call(&fixture.app, request).await?;
        assert!(
            matches!(
                answer.status,
                StatusCode::FORBIDDEN
                    | StatusCode::UNSUPPORTED_MEDIA_TYPE
                    | StatusCode::UNPROCESSABLE_ENTITY
            ),
            "{:?}: {}",
            answer.status,
            answer.body
        );
    }
    assert_eq!(fixture.store.list().await?.len(), 1, "nothing was replayed");
    assert!(fixture.sender.kept.sent().is_empty());
    Ok(())
}

#[tokio::test]
async fn a_foreign_host_name_is_refused_while_on_loopback() -> TestResult {
    let fixture = Fixture::new()?;
    let request = Request::get("/")
        .header(header::HOST, "rebound.evil.example:9001")
        .body(Body::empty())?;
    let answer = call(&fixture.app, request).await?;
    assert_eq!(answer.status, StatusCode::MISDIRECTED_REQUEST);
    Ok(())
}

#[test]
fn the_flag_takes_only_loopback_addresses_and_the_config_any() -> TestResult {
    let settings = DashboardSettings::default();
    assert_eq!(listen_address(None, &settings)?, DEFAULT_LISTEN);
    let local: SocketAddr = "127.0.0.1:0".parse()?;
    assert_eq!(listen_address(Some(local), &settings)?, local);
    let open: SocketAddr = "0.0.0.0:9001".parse()?;
    assert!(listen_address(Some(open), &settings).is_err());
    let configured = DashboardSettings {
        enabled: true,
        listen: Some(open),
    };
    assert_eq!(listen_address(None, &configured)?, open);
    Ok(())
}

#[test]
fn the_dashboard_section_is_strict() -> TestResult {
    let base = "[sender]\ntype = \"outbox\"\nfrom = \"h@example.com\"\n\n\
                [[rule]]\nname = \"all\"\nto = [\"t@example.com\"]\n\n";
    let on = format!("{base}[dashboard]\nenabled = true\nlisten = \"0.0.0.0:9100\"\n");
    let config = config::validate::parse(&on, Origin::BuiltIn, &|_| None)?;
    assert!(config.dashboard.enabled);
    assert_eq!(config.dashboard.listen, Some("0.0.0.0:9100".parse()?));

    let off = config::validate::parse(base, Origin::BuiltIn, &|_| None)?;
    assert_eq!(off.dashboard, DashboardSettings::default());

    for bad in ["port = 1\n", "listen = \"nowhere\"\n"] {
        let text = format!("{base}[dashboard]\n{bad}");
        let err = config::validate::parse(&text, Origin::BuiltIn, &|_| None)
            .err()
            .ok_or(bad)?;
        let problems = format!("{:?}", err.problems());
        assert!(problems.contains("[dashboard]"), "{problems}");
    }
    Ok(())
}
