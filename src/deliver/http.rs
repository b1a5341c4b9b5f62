//! What the HTTP senders (SendGrid, Mailgun, chat webhooks) share: one TLS client per sender,
//! one wait for a short rate limit, and one reading of what an HTTP answer means for a retry.
//!
//! A 429 whose `Retry-After` (seconds or an HTTP date, RFC 9110 section 10.2.3) or
//! `X-RateLimit-Reset` (epoch seconds, as SendGrid sends it) asks for no more than
//! [`HttpSettings::max_wait`] is waited out here and the request sent once more. A longer wait
//! is left to whoever retries the event, with the hint on the error
//! ([`DeliveryError::retry_after`]).

use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder, StatusCode};
use tracing::debug;

use super::DeliveryError;
use crate::render::format;

/// Sent with every request, so providers' logs name the client.
const USER_AGENT: &str = concat!("herald/", env!("CARGO_PKG_VERSION"));

/// Error bodies are read up to this many bytes; providers' explanations are far shorter.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// A provider's error text is cut to this many characters in messages.
const MAX_ERROR_CHARS: usize = 300;

/// Below this, an `X-RateLimit-Reset` value is taken as seconds from now rather than as an
/// epoch second (1e9 is September 2001), since some services send a delay there.
const EPOCH_SECONDS_FLOOR: i64 = 1_000_000_000;

/// How an HTTP sender talks to its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    /// Longest a whole request may take, connect to last byte.
    pub timeout: Duration,
    /// Longest rate-limit wait the sender sits out itself, once, before reporting a transient
    /// failure; zero never waits.
    pub max_wait: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout: Duration::from_secs(30),
            max_wait: Duration::from_secs(10),
        }
    }
}

/// The HTTPS client could not be built (e.g. the TLS backend failed to initialise).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the https client for {sender}")]
pub struct HttpSetupError {
    /// Which sender.
    pub sender: &'static str,
    #[source]
    pub source: reqwest::Error,
}

/// A request that got no success answer, reduced to what classification needs.
#[derive(Debug)]
pub enum Failure {
    /// No usable answer: refused or reset connection, timeout, TLS failure. The error carries
    /// no URL (a webhook URL is a secret).
    NoAnswer(reqwest::Error),
    /// The service answered with something other than a 2xx.
    Status {
        /// The HTTP status.
        status: StatusCode,
        /// How long the service asked us to wait, when it said.
        retry_after: Option<Duration>,
        /// The provider's explanation: one line, bounded.
        text: String,
    },
}

/// A 2xx answer.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, up to 64 KiB, lossily decoded as UTF-8.
    pub body: String,
}

/// One service's client: built once, shared by every send.
#[derive(Debug, Clone)]
pub struct Api {
    name: &'static str,
    client: Client,
    max_wait: Duration,
}

impl Api {
    /// Builds the client: rustls with the platform's roots, no redirects (a redirected POST
    /// could carry a key or a message somewhere unexpected), the given timeout.
    pub fn new(name: &'static str, settings: HttpSettings) -> Result<Api, HttpSetupError> {
        let client = Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| HttpSetupError {
                sender: name,
                source,
            })?;
        Ok(Api {
            name,
            client,
            max_wait: settings.max_wait,
        })
    }

    /// Sends the request `build` makes; on a 429 asking for a short wait, waits and sends a
    /// fresh one once more.
    pub async fn send(&self, build: impl Fn(&Client) -> RequestBuilder) -> Result<Answer, Failure> {
        let first = self.send_once(&build).await;
        let wait = match &first {
            Err(Failure::Status {
                status: StatusCode::TOO_MANY_REQUESTS,
                retry_after: Some(wait),
                ..
            }) if *wait <= self.max_wait => *wait,
            _ => return first,
        };
        debug!(
            sender = self.name,
            wait_ms = wait.as_millis() as u64,
            "rate limited; waiting once before retrying"
        );
        tokio::time::sleep(wait).await;
        self.send_once(&build).await
    }

    async fn send_once(
        &self,
        build: &impl Fn(&Client) -> RequestBuilder,
    ) -> Result<Answer, Failure> {
        let no_answer = |err: reqwest::Error| Failure::NoAnswer(err.without_url());
        let mut response = build(&self.client).send().await.map_err(no_answer)?;
        let (status, headers) = (response.status(), response.headers().clone());
        let mut body = Vec::new();
        while body.len() < MAX_BODY_BYTES
            && let Some(chunk) = response.chunk().await.map_err(no_answer)?
        {
            body.extend_from_slice(&chunk);
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        if status.is_success() {
            return Ok(Answer {
                status,
                headers,
                body,
            });
        }
        Err(Failure::Status {
            status,
            retry_after: retry_after(&headers, Timestamp::now()),
            text: error_text(&body),
        })
    }
}

/// Sorts a failed request by whether sending again later can help.
///
/// No answer, 429 and 5xx are transient (with the service's wait hint); whatever `explain`
/// has words for (typically 401 and 403: a key to fix) is permanent with those words; any other
/// answer (4xx, an unexpected redirect) is permanent with the provider's own text.
pub fn classify(
    sender: &'static str,
    failure: Failure,
    explain: impl Fn(StatusCode, &str) -> Option<String>,
) -> DeliveryError {
    let (status, retry_after, text) = match failure {
        Failure::NoAnswer(err) => {
            let reason = with_causes(&err);
            return DeliveryError::Transient {
                sender,
                reason,
                source: Some(Box::new(err)),
                retry_after: None,
            };
        }
        Failure::Status {
            status,
            retry_after,
            text,
        } => (status, retry_after, text),
    };
    let answered = match text.as_str() {
        "" => format!("answered {status}"),
        text => format!("answered {status}: {text}"),
    };
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let reason = match retry_after {
            Some(wait) => format!("{answered} (asked to wait {} s)", wait.as_secs()),
            None => answered,
        };
        return DeliveryError::Transient {
            sender,
            reason,
            source: None,
            retry_after,
        };
    }
    let reason = explain(status, &text).unwrap_or(answered);
    DeliveryError::Permanent {
        sender,
        reason,
        source: None,
    }
}

/// The wait a service asked for: `Retry-After` first (delay seconds or an HTTP date), else
/// `X-RateLimit-Reset`. A time already past means no wait.
pub fn retry_after(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    let header = |name: &str| {
        let value = headers.get(name)?.to_str().ok()?;
        Some(value.trim())
    };
    if let Some(value) = header("retry-after") {
        if let Ok(secs) = value.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        let parser = jiff::fmt::rfc2822::DateTimeParser::new();
        if let Ok(at) = parser.parse_timestamp(value) {
            return Some(until(now, at));
        }
    }
    let reset = header("x-ratelimit-reset")?.parse::<i64>().ok()?;
    if reset < EPOCH_SECONDS_FLOOR {
        return Some(Duration::from_secs(reset.max(0).unsigned_abs()));
    }
    Some(until(now, Timestamp::from_second(reset).ok()?))
}

fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// The provider's explanation from an error body: SendGrid's `errors[].message`, Mailgun's and
/// Slack's `message` or `error`, else the body itself; on one line and bounded.
pub fn error_text(body: &str) -> String {
    let text = json_message(body).unwrap_or_else(|| body.to_owned());
    let line = format::one_line(&text);
    match line.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

fn json_message(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    if let Some(errors) = value.get("errors").and_then(|e| e.as_array()) {
        let messages: Vec<&str> = errors
            .iter()
            .filter_map(|e| e.get("message")?.as_str())
            .collect();
        if !messages.is_empty() {
            return Some(messages.join("; "));
        }
    }
    let message = value.get("message").or_else(|| value.get("error"))?;
    message.as_str().map(str::to_owned)
}

/// An error and its causes on one line: reqwest's own text is only "error sending request".
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        text = format!("{text}: {err}");
        cause = err.source();
    }
    text
}

#[cfg(test)]
pub(crate) mod testing {
    //! A local HTTP server that records every request and answers from a script.

    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::http::{HeaderMap, Method};
    use axum::response::Response;

    /// One request as the server saw it.
    #[derive(Debug, Clone)]
    pub(crate) struct Recorded {
        pub method: Method,
        /// Path and query.
        pub path: String,
        pub headers: HeaderMap,
        pub body: String,
    }

    impl Recorded {
        /// A header's value as text, or "" when absent.
        pub fn header(&self, name: &str) -> &str {
            self.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        }

        /// The body as JSON.
        pub fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.body).expect("json body")
        }

        /// The body as form fields, in order.
        pub fn form(&self) -> Vec<(String, String)> {
            url::form_urlencoded::parse(self.body.as_bytes())
                .into_owned()
                .collect()
        }
    }

    /// One scripted answer.
    pub(crate) struct Reply {
        pub status: u16,
        pub headers: Vec<(&'static str, String)>,
        pub body: String,
    }

    impl Reply {
        pub fn new(status: u16, body: &str) -> Reply {
            Reply {
                status,
                headers: Vec::new(),
                body: body.to_owned(),
            }
        }

        pub fn header(mut self, name: &'static str, value: &str) -> Reply {
            self.headers.push((name, value.to_owned()));
            self
        }
    }

    #[derive(Default)]
    struct Script {
        replies: Mutex<VecDeque<Reply>>,
        seen: Mutex<Vec<Recorded>>,
    }

    /// The running server; stops when dropped.
    pub(crate) struct Recorder {
        /// `http://127.0.0.1:<port>`
        pub url: String,
        script: Arc<Script>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Recorder {
        /// Starts on a free loopback port; answers `replies` in order, then 500.
        pub async fn start(replies: Vec<Reply>) -> Recorder {
            let script = Arc::new(Script {
                replies: Mutex::new(replies.into()),
                seen: Mutex::default(),
            });
            let app = axum::Router::new()
                .fallback(record)
                .with_state(script.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let url = format!("http://{}", listener.local_addr().expect("addr"));
            let task = tokio::spawn(async move {
                axum::serve(listener, app).await.expect("serve");
            });
            Recorder { url, script, task }
        }

        /// Every request so far.
        pub fn requests(&self) -> Vec<Recorded> {
            self.script.seen.lock().expect("lock").clone()
        }
    }

    impl Drop for Recorder {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn record(State(script): State<Arc<Script>>, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.expect("body");
        script.seen.lock().expect("lock").push(Recorded {
            method: parts.method,
            path: parts.uri.to_string(),
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let reply = script.replies.lock().expect("lock").pop_front();
        let reply = reply.unwrap_or_else(|| Reply::new(500, "script ran out"));
        let mut response = Response::builder().status(reply.status);
        for (name, value) in reply.headers {
            response = response.header(name, value);
        }
        response.body(Body::from(reply.body)).expect("response")
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::testing::{Recorder, Reply};
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header value"));
        }
        map
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_rate_limit_resets() {
        let now: Timestamp = "2024-10-01T12:00:00Z".parse().expect("time");
        let wait = |pairs: &[(&'static str, &str)]| retry_after(&headers(pairs), now);
        assert_eq!(wait(&[("retry-after", "7")]), Some(Duration::from_secs(7)));
        let date = "Tue, 01 Oct 2024 12:00:30 GMT";
        assert_eq!(
            wait(&[("retry-after", date)]),
            Some(Duration::from_secs(30))
        );
        let past = "Tue, 01 Oct 2024 11:00:00 GMT";
        assert_eq!(wait(&[("retry-after", past)]), Some(Duration::ZERO));
        let reset = (now.as_second() + 42).to_string();
        let sendgrid = [("x-ratelimit-reset", reset.as_str())];
        assert_eq!(wait(&sendgrid), Some(Duration::from_secs(42)));
        assert_eq!(
            wait(&[("x-ratelimit-reset", "5")]),
            Some(Duration::from_secs(5))
        );
        let both = [("retry-after", "3"), ("x-ratelimit-reset", reset.as_str())];
        assert_eq!(wait(&both), Some(Duration::from_secs(3)));
        assert_eq!(wait(&[("retry-after", "soon")]), None);
        assert_eq!(wait(&[]), None);
    }

    #[test]
    fn error_text_prefers_the_providers_message_and_is_bounded() {
        let sendgrid = r#"{"errors":[{"message":"bad from","field":"from"},{"message":"no to"}]}"#;
        assert_eq!(error_text(sendgrid), "bad from; no to");
        assert_eq!(
            error_text(r#"{"message":"Domain not found"}"#),
            "Domain not found"
        );
        assert_eq!(error_text("invalid_payload\n"), "invalid_payload");
        let long = "x".repeat(1000);
        assert_eq!(error_text(&long).chars().count(), MAX_ERROR_CHARS + 1);
    }

    fn status(code: u16, retry_after: Option<u64>) -> Failure {
        Failure::Status {
            status: StatusCode::from_u16(code).expect("status"),
            retry_after: retry_after.map(Duration::from_secs),
            text: "why".into(),
        }
    }

    #[test]
    fn rate_limits_and_server_errors_are_transient_with_the_hint() {
        let err = classify("api", status(429, Some(60)), |_, _| None);
        assert!(err.is_transient());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
        assert!(err.to_string().contains("asked to wait 60 s"), "{err}");
        assert!(classify("api", status(503, None), |_, _| None).is_transient());
    }

    #[test]
    fn client_errors_are_permanent_and_explained_where_known() {
        let explain = |status: StatusCode, _: &str| {
            (status == StatusCode::UNAUTHORIZED).then(|| "check the key".to_owned())
        };
        let err = classify("api", status(401, None), explain);
        assert!(!err.is_transient());
        assert_eq!(err.to_string(), "api rejected the message: check the key");
        let err = classify("api", status(400, None), explain);
        assert_eq!(
            err.to_string(),
            "api rejected the message: answered 400 Bad Request: why"
        );
    }

    #[tokio::test]
    async fn a_long_rate_limit_is_not_waited_out() {
        let server = Recorder::start(vec![Reply::new(429, "").header("retry-after", "3600")]).await;
        let api = Api::new("api", HttpSettings::default()).expect("client");
        let failure = api.send(|c| c.post(&server.url)).await.expect_err("429");
        let err = classify("api", failure, |_, _| None);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn refused_connection_is_transient_and_names_no_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "http://{}/services/SECRET",
            listener.local_addr().expect("addr")
        );
        drop(listener);
        let api = Api::new("api", HttpSettings::default()).expect("client");
        let failure = api.send(|c| c.post(&url)).await.expect_err("refused");
        let err = classify("api", failure, |_, _| None);
        assert!(err.is_transient(), "{err}");
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }
}
