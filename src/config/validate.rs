//! Turns the TOML text into a checked [`Config`], collecting every problem before reporting.
//!
//! Each section and each rule is deserialized on its own, so an unknown field in one rule does
//! not hide an invalid address in another or a bad sender type.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use jiff::tz::TimeZone;
use lettre::message::Mailbox;
use serde::de::DeserializeOwned;

use super::file::{
    DELIVERY_FIELDS, DashboardFile, DeadLetterFile, DedupeFile, DeliveryFile, DigestFile,
    MailgunFile, OneOrMany, OutboxFile, QueueFile, RuleFile, SECTIONS, SendGridFile, SenderFile,
    ServeFile, SesFile, SkipFile, SmtpFile, TraceFile, UnmatchedFile,
};
use super::{Config, DigestSettings, Origin, Rule, RuleDigest, SenderKind, SenderSettings};
use crate::deadletter::DeadLetterSettings;
use crate::dedupe::{DedupeBackend, DedupeSettings};
use crate::deliver::chat::ChatWebhook;
use crate::deliver::http::HttpSettings;
use crate::deliver::mailgun::{self, MailgunSettings};
use crate::deliver::rate_limit::RateLimit;
use crate::deliver::retry::RetryPolicy;
use crate::deliver::sendgrid::{self, SendGridSettings};
use crate::deliver::ses::SesSettings;
use crate::deliver::smtp::{SmtpSettings, Tls};
use crate::links::MAX_LINK_VALIDITY;
use crate::queue::QueueSettings;
use crate::render::digest::{DigestSources, DigestTemplates};
use crate::render::{TemplateSources, Templates};
use crate::route::Matcher;
use crate::runtime::dashboard::DashboardSettings;
use crate::runtime::serve::{MAX_BODY_LIMIT, MIN_BODY_LIMIT, ServeSettings};
use crate::secret::Secret;
use crate::trace::TraceSettings;

/// SES and many SMTP relays refuse more recipients than this in one message.
const MAX_RECIPIENTS: usize = 50;

/// The longest digest window: a day. Longer windows would hold notifications back for longer
/// than anyone waits for them.
const MAX_DIGEST_SECS: u64 = 86_400;

/// One thing wrong with a configuration, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The section, rule and field, e.g. `rule "contracts" (#1), to[0]`.
    pub place: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML; nothing else can be checked.
    #[error("config {origin} is not valid TOML: {message}")]
    Syntax { origin: Origin, message: String },
    /// The file is valid TOML but has problems; all of them are listed.
    #[error("config {origin} has {} problem(s)", problems.len())]
    Invalid {
        origin: Origin,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The individual problems, for configs that parsed as TOML.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// Looks up environment variables; a parameter so tests need not touch the real environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Parses and checks a configuration, returning it only if nothing at all is wrong.
pub fn parse(text: &str, origin: Origin, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
    let mut checker = Checker {
        problems: Vec::new(),
        env,
    };
    let config = checker.config(table, origin.clone());
    match config {
        Some(config) if checker.problems.is_empty() => Ok(config),
        _ => Err(ConfigError::Invalid {
            origin,
            problems: checker.problems,
        }),
    }
}

/// Walks the file, recording problems; returns `None` wherever a part could not be built.
struct Checker<'a> {
    problems: Vec<Problem>,
    env: EnvLookup<'a>,
}

impl Checker<'_> {
    fn report(&mut self, place: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            place: place.into(),
            message: message.into(),
        });
    }

    fn config(&mut self, mut table: toml::Table, origin: Origin) -> Option<Config> {
        for key in table.keys().filter(|k| !SECTIONS.contains(&k.as_str())) {
            let message = format!("unknown field `{key}`, expected one of {SECTIONS:?}");
            self.problems.push(Problem {
                place: "top level".into(),
                message,
            });
        }

        let sender = self.sender_section(table.remove("sender"));
        let default_zone = self.default_time_zone(table.remove("time_zone"));
        let skip = self.optional::<SkipFile>("[skip]", table.remove("skip"));
        let unmatched = self.optional::<UnmatchedFile>("unmatched", table.remove("unmatched"));
        let dedupe = self.dedupe(table.remove("dedupe"));
        let mut dead_letter = self.dead_letter(table.remove("dead_letter"));
        let has_queue = table.contains_key("queue");
        let queue = self.queue(table.remove("queue"));
        if let (true, Some(dedupe)) = (has_queue, &dedupe) {
            self.queue_fits_dedupe(dedupe.as_ref());
        }
        if let (Some(Some(queue)), Some(none @ None)) = (&queue, &mut dead_letter) {
            // A queue parks what it gives up on: in its own file unless [dead_letter] says.
            *none = Some(DeadLetterSettings::in_file(queue.path.clone()));
        }
        let digest = self.digest_section(table.remove("digest"));
        let trace = self.trace(table.remove("trace"));
        let serve = self.serve(table.remove("serve"));
        let dashboard = self.dashboard(table.remove("dashboard"));
        let rules = self.rules(table.remove("rule"), &default_zone);
        if let Some(sender) = &sender {
            self.rules_fit_sender(sender, &rules);
        }

        Some(Config {
            origin,
            sender: sender?,
            skip_folder_placeholders: skip.as_ref()?.folder_placeholders,
            skip_empty_objects: skip?.empty_objects,
            unmatched: unmatched?,
            dedupe: dedupe?,
            dead_letter: dead_letter?,
            queue: queue?,
            digest: digest?,
            trace: trace?,
            serve: serve?,
            dashboard: dashboard?,
            rules,
        })
    }

    /// Deserializes one part of the file, reporting serde's message at `place` on failure.
    ///
    /// serde stops at the first unknown field; to report every one and still check the rest
    /// of the section, each unknown field is reported, taken out, and the section read again.
    fn section<T: DeserializeOwned>(&mut self, place: &str, mut value: toml::Value) -> Option<T> {
        loop {
            let error = match value.clone().try_into::<T>() {
                Ok(parsed) => return Some(parsed),
                Err(e) => e,
            };
            let message = error.message().trim_end_matches('\n');
            self.report(place, message);
            let field = unknown_field(message)?;
            value.as_table_mut()?.remove(field)?;
        }
    }

    fn optional<T: DeserializeOwned + Default>(
        &mut self,
        place: &str,
        value: Option<toml::Value>,
    ) -> Option<T> {
        match value {
            Some(value) => self.section(place, value),
            None => Some(T::default()),
        }
    }

    fn default_time_zone(&mut self, value: Option<toml::Value>) -> TimeZone {
        let name = self
            .optional::<Option<String>>("time_zone", value)
            .flatten();
        name.and_then(|name| self.time_zone("time_zone", &name))
            .unwrap_or(TimeZone::UTC)
    }

    fn time_zone(&mut self, place: &str, name: &str) -> Option<TimeZone> {
        match TimeZone::get(name) {
            Ok(zone) => Some(zone),
            Err(_) => {
                let message = format!("unknown time zone {name:?}; use an IANA name");
                self.report(place, message + " such as \"Europe/Berlin\"");
                None
            }
        }
    }

    fn mailbox(&mut self, place: &str, text: &str) -> Option<Mailbox> {
        match text.parse::<Mailbox>() {
            Ok(mailbox) => Some(mailbox),
            Err(e) => {
                self.report(place, format!("invalid email address {text:?}: {e}"));
                None
            }
        }
    }

    fn mailboxes(&mut self, place: &str, texts: &[String]) -> Vec<Mailbox> {
        let mut mailboxes: Vec<Mailbox> = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            let Some(mailbox) = self.mailbox(&format!("{place}[{i}]"), text) else {
                continue;
            };
            if mailboxes.iter().any(|m| m.email == mailbox.email) {
                self.report(
                    format!("{place}[{i}]"),
                    format!("{} is listed twice", mailbox.email),
                );
                continue;
            }
            mailboxes.push(mailbox);
        }
        mailboxes
    }

    fn sender_section(&mut self, value: Option<toml::Value>) -> Option<SenderSettings> {
        let Some(mut value) = value else {
            self.report("[sender]", "missing section: add [sender] with a `type`");
            return None;
        };
        let delivery = self.delivery(&mut value);
        let reported = self.problems.len();
        let backend = self.section::<SenderFile>("[sender]", value);
        self.mention_shared_fields(reported);
        let (from, kind) = backend.and_then(|file| self.sender(file))?;
        let (retry, rate_limit) = delivery?;
        Some(SenderSettings {
            from,
            kind,
            retry,
            rate_limit,
        })
    }

    /// serde lists only the type's own keys for an unknown one; name the shared keys too.
    fn mention_shared_fields(&mut self, since: usize) {
        let unknown = self.problems[since..]
            .iter_mut()
            .filter(|p| p.place == "[sender]" && p.message.starts_with("unknown field"));
        for problem in unknown {
            let shared = DELIVERY_FIELDS.map(|f| format!("`{f}`")).join(", ");
            problem.message += &format!(", or one every type shares: {shared}");
        }
    }

    /// Takes the keys every sender type shares out of `[sender]` and checks them.
    fn delivery(&mut self, sender: &mut toml::Value) -> Option<(RetryPolicy, Option<RateLimit>)> {
        let mut shared = toml::Table::new();
        if let Some(table) = sender.as_table_mut() {
            for key in DELIVERY_FIELDS {
                if let Some(value) = table.remove(key) {
                    shared.insert(key.to_owned(), value);
                }
            }
        }
        let file = self.section::<DeliveryFile>("[sender]", toml::Value::Table(shared))?;
        let retry = self.retry_policy(&file);
        let rate_limit = self.rate_limit(&file);
        Some((retry?, rate_limit?))
    }

    fn retry_policy(&mut self, file: &DeliveryFile) -> Option<RetryPolicy> {
        if file.max_attempts == 0 {
            self.report(
                "[sender] max_attempts",
                "must be at least 1 (1 never retries)",
            );
            return None;
        }
        Some(RetryPolicy {
            max_attempts: file.max_attempts,
            max_wait: Duration::from_secs(file.retry_max_secs),
        })
    }

    /// `Some(None)` when the file sets no rate; `None` when what it sets is wrong.
    fn rate_limit(&mut self, file: &DeliveryFile) -> Option<Option<RateLimit>> {
        match (&file.rate, file.rate_per_sec) {
            (Some(_), Some(_)) => {
                self.report(
                    "[sender] rate",
                    "set either `rate` or `rate_per_sec`, not both",
                );
                None
            }
            (Some(name), None) => self.rate_preset(name, file.burst).map(Some),
            (None, Some(per_sec)) => self.rate_per_sec(per_sec, file.burst).map(Some),
            (None, None) if file.burst.is_some() => {
                self.report("[sender] burst", "only applies with `rate_per_sec`");
                None
            }
            (None, None) => Some(None),
        }
    }

    fn rate_preset(&mut self, name: &str, burst: Option<u32>) -> Option<RateLimit> {
        if burst.is_some() {
            self.report(
                "[sender] burst",
                "only applies with `rate_per_sec`, not a named `rate`",
            );
        }
        let limit = RateLimit::preset(name);
        if limit.is_none() {
            let message = format!("unknown rate `{name}`, expected \"ses-sandbox\"");
            self.report("[sender] rate", message);
        }
        limit.filter(|_| burst.is_none())
    }

    fn rate_per_sec(&mut self, per_sec: f64, burst: Option<u32>) -> Option<RateLimit> {
        // The floor keeps the interval between sends a sane duration (under 17 minutes).
        let rate_ok = per_sec.is_finite() && per_sec >= 0.001;
        if !rate_ok {
            self.report(
                "[sender] rate_per_sec",
                "must be a number of at least 0.001",
            );
        }
        if burst == Some(0) {
            self.report("[sender] burst", "must be at least 1");
        }
        let burst = burst.unwrap_or(1);
        (rate_ok && burst > 0).then_some(RateLimit { per_sec, burst })
    }

    fn sender(&mut self, file: SenderFile) -> Option<(Mailbox, SenderKind)> {
        match file {
            SenderFile::Outbox(OutboxFile { from, dir }) => {
                if dir.exists() && !dir.is_dir() {
                    let message = format!("{} exists and is not a folder", dir.display());
                    self.report("[sender] dir", message);
                }
                let from = self.mailbox("[sender] from", &from)?;
                let kind = SenderKind::Outbox { dir };
                Some((from, kind))
            }
            SenderFile::Smtp(smtp) => {
                let from = self.mailbox("[sender] from", &smtp.from);
                let settings = self.smtp(smtp)?;
                let kind = SenderKind::Smtp(settings);
                Some((from?, kind))
            }
            SenderFile::Ses(ses) => {
                let from = self.mailbox("[sender] from", &ses.from);
                let kind = SenderKind::Ses(self.ses(ses)?);
                Some((from?, kind))
            }
            SenderFile::SendGrid(file) => {
                let from = self.mailbox("[sender] from", &file.from);
                let kind = SenderKind::SendGrid(self.sendgrid(file)?);
                Some((from?, kind))
            }
            SenderFile::Mailgun(file) => {
                let from = self.mailbox("[sender] from", &file.from);
                let kind = SenderKind::Mailgun(self.mailgun(file)?);
                Some((from?, kind))
            }
        }
    }

    fn sendgrid(&mut self, file: SendGridFile) -> Option<SendGridSettings> {
        let api_url = file.api_url.as_deref().unwrap_or(sendgrid::DEFAULT_API_URL);
        let api_url = self.api_url("[sender] api_url", api_url);
        let api_key = self.env_var("[sender] api_key_env", &file.api_key_env);
        let http = self.http_settings(file.timeout_secs, file.rate_limit_wait_secs);
        Some(SendGridSettings {
            api_url: api_url?,
            api_key: Secret::new(api_key?),
            api_key_env: file.api_key_env,
            http: http?,
        })
    }

    fn mailgun(&mut self, file: MailgunFile) -> Option<MailgunSettings> {
        let api_url = file.api_url.as_deref().unwrap_or(mailgun::DEFAULT_API_URL);
        let api_url = self.api_url("[sender] api_url", api_url);
        let domain = self.domain("[sender] domain", &file.domain);
        let api_key = self.env_var("[sender] api_key_env", &file.api_key_env);
        let http = self.http_settings(file.timeout_secs, file.rate_limit_wait_secs);
        Some(MailgunSettings {
            api_url: api_url?,
            domain: domain?,
            api_key: Secret::new(api_key?),
            api_key_env: file.api_key_env,
            http: http?,
        })
    }

    fn http_settings(&mut self, timeout_secs: u64, wait_secs: u64) -> Option<HttpSettings> {
        if timeout_secs == 0 {
            self.report("[sender] timeout_secs", "must be at least 1");
            return None;
        }
        Some(HttpSettings {
            timeout: Duration::from_secs(timeout_secs),
            max_wait: Duration::from_secs(wait_secs),
        })
    }

    /// An API base URL: `https://host[:port]`, or `http://` on loopback (a local test server),
    /// with no credentials, path or query. Returned without a trailing slash.
    fn api_url(&mut self, place: &str, text: &str) -> Option<String> {
        let url = match url::Url::parse(text) {
            Ok(url) => url,
            Err(e) => {
                self.report(place, format!("invalid URL {text:?}: {e}"));
                return None;
            }
        };
        let host = url.host_str().unwrap_or("");
        let secure = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(host));
        let bare = url.username().is_empty()
            && url.password().is_none()
            && matches!(url.path(), "" | "/")
            && url.query().is_none()
            && url.fragment().is_none();
        if !secure || !bare || host.is_empty() {
            let message = format!("{text:?} must be https://host[:port], nothing more");
            self.report(place, message);
            return None;
        }
        Some(url.as_str().trim_end_matches('/').to_owned())
    }

    /// A DNS name, as Mailgun sending domains are; it becomes part of the request path.
    fn domain(&mut self, place: &str, domain: &str) -> Option<String> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-');
        if domain.contains('.') && domain.chars().all(allowed) {
            return Some(domain.to_owned());
        }
        self.report(
            place,
            format!("{domain:?} is not a domain name such as \"mg.example.com\""),
        );
        None
    }

    /// SendGrid refuses a message without a `to` recipient; a rule that only copies people
    /// would fail on every upload.
    fn rules_fit_sender(&mut self, sender: &SenderSettings, rules: &[Rule]) {
        if !matches!(sender.kind, SenderKind::SendGrid(_)) {
            return;
        }
        for rule in rules
            .iter()
            .filter(|r| r.has_recipients() && r.to.is_empty())
        {
            let message = "sendgrid needs at least one `to` recipient in every email";
            self.report(format!("rule {:?}, to", rule.name), message);
        }
    }

    fn ses(&mut self, file: SesFile) -> Option<SesSettings> {
        let region = file
            .region
            .filter(|region| self.region("[sender] region", region));
        let configuration_set = file.configuration_set;
        if configuration_set
            .as_deref()
            .is_some_and(|set| set.trim().is_empty())
        {
            let message = "must not be empty; leave it out to send without a configuration set";
            self.report("[sender] configuration_set", message);
            return None;
        }
        Some(SesSettings {
            region,
            configuration_set,
        })
    }

    /// Accepts names shaped like AWS regions (`eu-west-1`, `us-gov-east-1`), so a typo such
    /// as `"eu-west"` or `"Frankfurt"` is a start-up problem rather than a failed send.
    fn region(&mut self, place: &str, region: &str) -> bool {
        let shaped = region.split('-').count() >= 3
            && region.split('-').all(|part| !part.is_empty())
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !shaped {
            let message = format!("{region:?} is not an AWS region name such as \"eu-west-1\"");
            self.report(place, message);
        }
        shaped
    }

    /// `[dedupe]`, when present; `Some(None)` when absent, `None` when it has problems.
    fn dedupe(&mut self, value: Option<toml::Value>) -> Option<Option<DedupeSettings>> {
        let Some(value) = value else {
            return Some(None);
        };
        let (backend, days) = match self.section::<DedupeFile>("[dedupe]", value)? {
            DedupeFile::Memory(memory) => (DedupeBackend::Memory, memory.retention_days),
            DedupeFile::DynamoDb(dynamodb) => {
                let table = self.table_name(dynamodb.table)?;
                (DedupeBackend::DynamoDb { table }, dynamodb.retention_days)
            }
            DedupeFile::Local(local) => {
                let path = self.state_path("[dedupe] path", local.path)?;
                (DedupeBackend::Local { path }, local.retention_days)
            }
        };
        if days == 0 {
            let message = "must be at least 1: a sent email has to be remembered for as long as \
                           the platform may redeliver its event";
            self.report("[dedupe] retention_days", message);
            return None;
        }
        let retention = Duration::from_secs(u64::from(days) * 24 * 3600);
        Some(Some(DedupeSettings { backend, retention }))
    }

    /// `[serve]`, with its token resolved now so a missing secret is a start-up problem.
    fn serve(&mut self, value: Option<toml::Value>) -> Option<ServeSettings> {
        let file = self.optional::<ServeFile>("[serve]", value)?;
        let listen = file.listen.as_deref().map(|text| {
            text.parse::<SocketAddr>().map_err(|_| {
                let message = format!("{text:?} is not an address such as \"0.0.0.0:8080\"");
                self.report("[serve] listen", message);
            })
        });
        let limits = MIN_BODY_LIMIT..=MAX_BODY_LIMIT;
        let body_limit = usize::try_from(file.body_limit_bytes)
            .ok()
            .filter(|limit| limits.contains(limit));
        if body_limit.is_none() {
            let message = format!("must be between {MIN_BODY_LIMIT} and {MAX_BODY_LIMIT}");
            self.report("[serve] body_limit_bytes", message);
        }
        let token = file.minio_token_env.map(|name| {
            self.env_var("[serve] minio_token_env", &name)
                .map(Secret::new)
        });
        for topic in &file.sns_topics {
            let partitions = ["arn:aws:sns:", "arn:aws-cn:sns:", "arn:aws-us-gov:sns:"];
            if !partitions.iter().any(|p| topic.starts_with(p)) {
                let message = format!("{topic:?} is not an SNS topic ARN (arn:aws:sns:...)");
                self.report("[serve] sns_topics", message);
            }
        }
        Some(ServeSettings {
            listen: listen.transpose().ok()?,
            body_limit: body_limit?,
            minio_token: token.map_or(Some(None), |t| t.map(Some))?,
            sns_topics: file.sns_topics,
        })
    }

    /// `[dashboard]`, or its defaults (off in `serve`, loopback) without it.
    fn dashboard(&mut self, value: Option<toml::Value>) -> Option<DashboardSettings> {
        let file = self.optional::<DashboardFile>("[dashboard]", value)?;
        let listen = match file.listen.as_deref().map(str::parse::<SocketAddr>) {
            None => None,
            Some(Ok(addr)) => Some(addr),
            Some(Err(_)) => {
                let text = file.listen.unwrap_or_default();
                let message = format!("{text:?} is not an address such as \"127.0.0.1:9001\"");
                self.report("[dashboard] listen", message);
                return None;
            }
        };
        Some(DashboardSettings {
            enabled: file.enabled,
            listen,
        })
    }

    /// `[dead_letter]`, when present; `Some(None)` when absent, `None` when it has problems.
    fn dead_letter(&mut self, value: Option<toml::Value>) -> Option<Option<DeadLetterSettings>> {
        let Some(value) = value else {
            return Some(None);
        };
        let file = self.section::<DeadLetterFile>("[dead_letter]", value)?;
        let path = self.state_path("[dead_letter] path", file.path);
        for (field, value) in [
            ("max_entries", file.max_entries),
            ("max_age_days", file.max_age_days),
        ] {
            if value == 0 {
                self.report(format!("[dead_letter] {field}"), "must be at least 1");
            }
        }
        if file.max_entries == 0 || file.max_age_days == 0 {
            return None;
        }
        Some(Some(DeadLetterSettings {
            path: path?,
            max_entries: usize::try_from(file.max_entries).unwrap_or(usize::MAX),
            max_age: Duration::from_secs(u64::from(file.max_age_days) * 24 * 3600),
        }))
    }

    /// `[queue]`, when present; `Some(None)` when absent, `None` when it has problems.
    fn queue(&mut self, value: Option<toml::Value>) -> Option<Option<QueueSettings>> {
        let Some(value) = value else {
            return Some(None);
        };
        let file = self.section::<QueueFile>("[queue]", value)?;
        let path = self.state_path("[queue] path", file.path);
        let counts = [
            ("max_entries", u64::from(file.max_entries)),
            ("concurrency", u64::from(file.concurrency)),
            ("retry_max_secs", file.retry_max_secs),
            ("max_age_hours", u64::from(file.max_age_hours)),
        ];
        let zero: Vec<&str> = counts
            .iter()
            .filter(|(_, v)| *v == 0)
            .map(|(f, _)| *f)
            .collect();
        for field in &zero {
            self.report(format!("[queue] {field}"), "must be at least 1");
        }
        if file.concurrency > 1024 {
            self.report("[queue] concurrency", "must be at most 1024");
            return None;
        }
        if !zero.is_empty() {
            return None;
        }
        Some(Some(QueueSettings {
            path: path?,
            max_entries: usize::try_from(file.max_entries).unwrap_or(usize::MAX),
            concurrency: usize::try_from(file.concurrency).unwrap_or(16),
            retry_max: Duration::from_secs(file.retry_max_secs),
            max_age: Duration::from_secs(u64::from(file.max_age_hours) * 3600),
            drain_grace: Duration::from_secs(file.drain_secs),
        }))
    }

    /// A queued upload may be delivered again after a restart; only a dedupe store that
    /// outlives the process keeps that from sending twice.
    fn queue_fits_dedupe(&mut self, dedupe: Option<&DedupeSettings>) {
        let durable = matches!(
            dedupe.map(|d| &d.backend),
            Some(DedupeBackend::Local { .. } | DedupeBackend::DynamoDb { .. })
        );
        if !durable {
            self.report(
                "[queue]",
                "needs a [dedupe] store that survives restarts (type = \"local\" or \"dynamodb\"), \
                 or an upload delivered just before a restart is sent again after it",
            );
        }
    }

    /// `[trace]`, or its defaults without it; `Some(None)` when traces are turned off.
    fn trace(&mut self, value: Option<toml::Value>) -> Option<Option<TraceSettings>> {
        let file = self.optional::<TraceFile>("[trace]", value)?;
        let mut ok = true;
        for (field, value) in [
            ("max_file_mib", file.max_file_mib),
            ("max_files", file.max_files),
            ("max_age_days", file.max_age_days),
        ] {
            if value == 0 {
                self.report(format!("[trace] {field}"), "must be at least 1");
                ok = false;
            }
        }
        if file.dir.as_os_str().is_empty() {
            self.report("[trace] dir", "must name a folder");
            ok = false;
        }
        ok.then_some(())?;
        Some(file.enabled.then(|| TraceSettings {
            dir: file.dir,
            max_file_bytes: u64::from(file.max_file_mib) * 1024 * 1024,
            max_files: usize::try_from(file.max_files).unwrap_or(usize::MAX),
            max_age: Duration::from_secs(u64::from(file.max_age_days) * 24 * 3600),
        }))
    }

    /// `[digest]`, or the default state file without it.
    fn digest_section(&mut self, value: Option<toml::Value>) -> Option<DigestSettings> {
        let file = self.optional::<DigestFile>("[digest]", value)?;
        let path = self.state_path("[digest] path", file.path)?;
        Some(DigestSettings { path })
    }

    /// A state file path: not empty, and not a folder.
    fn state_path(&mut self, place: &str, path: PathBuf) -> Option<PathBuf> {
        if path.as_os_str().is_empty() || path.to_string_lossy().ends_with('/') {
            self.report(place, format!("{path:?} is not a file path"));
            return None;
        }
        Some(path)
    }

    /// DynamoDB table names are 3 to 255 of `a-z A-Z 0-9 _ - .`.
    fn table_name(&mut self, table: String) -> Option<String> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if (3..=255).contains(&table.len()) && table.chars().all(allowed) {
            return Some(table);
        }
        let message =
            format!("{table:?} is not a DynamoDB table name (3 to 255 of a-z A-Z 0-9 _ - .)");
        self.report("[dedupe] table", message);
        None
    }

    fn smtp(&mut self, file: SmtpFile) -> Option<SmtpSettings> {
        let endpoint = self.smtp_url(&file.url);
        let tls = self.tls(file.tls.as_deref(), endpoint.as_ref().map(|e| e.implicit));
        let credentials = self.credentials(&file);
        if file.timeout_secs == 0 {
            self.report("[sender] timeout_secs", "must be at least 1");
        }
        if file.pool_max == 0 {
            self.report("[sender] pool_max", "must be at least 1");
        }
        let (endpoint, tls, credentials) = (endpoint?, tls?, credentials?);
        if credentials.is_some() && tls == Tls::None && !is_loopback(&endpoint.host) {
            let message = "credentials would cross the network in plain text; \
                           use tls = \"starttls\" or \"implicit\"";
            self.report("[sender] tls", message);
        }
        Some(SmtpSettings {
            host: endpoint.host,
            port: endpoint.port,
            tls,
            credentials,
            timeout: Duration::from_secs(file.timeout_secs),
            pool_max: file.pool_max.max(1),
        })
    }

    /// Host, port and implied TLS of an `smtp://` or `smtps://` URL.
    fn smtp_url(&mut self, text: &str) -> Option<SmtpEndpoint> {
        let place = "[sender] url";
        let url = match url::Url::parse(text) {
            Ok(url) => url,
            Err(e) => {
                self.report(place, format!("invalid URL {text:?}: {e}"));
                return None;
            }
        };
        let (implicit, default_port) = match url.scheme() {
            "smtp" => (false, 587),
            "smtps" => (true, 465),
            other => {
                self.report(
                    place,
                    format!("scheme {other:?} is not smtp:// or smtps://"),
                );
                return None;
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            let message = "credentials in the URL would end up in logs and files; \
                           use username_env and password_env";
            self.report(place, message);
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            self.report(
                place,
                format!("{text:?}: only a host and a port are allowed"),
            );
        }
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            self.report(place, format!("{text:?} names no host"));
            return None;
        };
        Some(SmtpEndpoint {
            host: host.trim_matches(['[', ']']).to_owned(),
            port: url.port().unwrap_or(default_port),
            implicit,
        })
    }

    /// The TLS mode; `implicit` is what the URL's scheme implies, when the URL was readable.
    fn tls(&mut self, value: Option<&str>, implicit: Option<bool>) -> Option<Tls> {
        let tls = match value {
            None if implicit == Some(true) => Tls::Implicit,
            None => Tls::StartTls,
            Some("starttls") => Tls::StartTls,
            Some("implicit") => Tls::Implicit,
            Some("none") => Tls::None,
            Some(other) => {
                let message = format!("unknown TLS mode {other:?}: use starttls, implicit or none");
                self.report("[sender] tls", message);
                return None;
            }
        };
        if implicit == Some(true) && tls != Tls::Implicit {
            let message = "smtps:// means TLS from the first byte; use smtp:// for this mode";
            self.report("[sender] tls", message);
        }
        Some(tls)
    }

    /// Resolves `username_env`/`password_env` now, so a missing secret is a start-up problem
    /// rather than a failed delivery hours later.
    fn credentials(&mut self, file: &SmtpFile) -> Option<Option<(String, Secret)>> {
        let (user_var, pass_var) = match (&file.username_env, &file.password_env) {
            (None, None) => return Some(None),
            (Some(user), Some(pass)) => (user, pass),
            _ => {
                let message = "set both username_env and password_env, or neither";
                self.report("[sender]", message);
                return None;
            }
        };
        let user = self.env_var("[sender] username_env", user_var);
        let pass = self.env_var("[sender] password_env", pass_var);
        Some(Some((user?, Secret::new(pass?))))
    }

    fn env_var(&mut self, place: &str, name: &str) -> Option<String> {
        match (self.env)(name) {
            Some(value) if !value.is_empty() => Some(value),
            Some(_) => {
                self.report(place, format!("environment variable {name} is empty"));
                None
            }
            None => {
                self.report(place, format!("environment variable {name} is not set"));
                None
            }
        }
    }

    fn rules(&mut self, value: Option<toml::Value>, default_zone: &TimeZone) -> Vec<Rule> {
        let entries = match value {
            Some(toml::Value::Array(entries)) => entries,
            Some(_) => {
                self.report("rule", "must be written as [[rule]] tables");
                return Vec::new();
            }
            None => {
                let message = "no [[rule]]: nothing would ever be sent";
                self.report("rule", message);
                return Vec::new();
            }
        };
        let mut rules = Vec::new();
        let mut names = HashSet::new();
        for (index, entry) in entries.into_iter().enumerate() {
            let place = rule_place(&entry, index);
            let Some(file) = self.section::<RuleFile>(&place, entry) else {
                continue;
            };
            if !names.insert(file.name.clone()) {
                self.report(&place, "another rule already has this name");
            }
            rules.extend(self.rule(&place, file, default_zone));
        }
        rules
    }

    fn rule(&mut self, place: &str, file: RuleFile, default_zone: &TimeZone) -> Option<Rule> {
        if file.name.trim().is_empty() {
            self.report(place, "name must not be empty");
        }
        let matcher = self.matcher(place, &file);
        let to = self.mailboxes(&format!("{place}, to"), &file.to);
        let cc = self.mailboxes(&format!("{place}, cc"), &file.cc);
        let bcc = self.mailboxes(&format!("{place}, bcc"), &file.bcc);
        self.recipient_count(place, &file);
        let chat = self.chat_webhook(place, file.chat_webhook_env.as_deref());
        let reply_to = file.reply_to.as_deref();
        let reply_to = reply_to.map(|t| self.mailbox(&format!("{place}, reply_to"), t));
        let from = file
            .from
            .as_deref()
            .map(|t| self.mailbox(&format!("{place}, from"), t));
        let templates = self.templates(place, &file);
        let time_zone = match &file.time_zone {
            Some(name) => self.time_zone(&format!("{place}, time_zone"), name),
            None => Some(default_zone.clone()),
        };
        let download_link = self.download_link(place, file.download_link_secs);
        let digest = self.rule_digest(place, &file);
        Some(Rule {
            name: file.name,
            matcher: matcher?,
            to,
            cc,
            bcc,
            chat: chat?,
            reply_to: reply_to.map_or(Some(None), |r| r.map(Some))?,
            from: from.map_or(Some(None), |f| f.map(Some))?,
            templates: Arc::new(templates?),
            time_zone: time_zone?,
            download_link,
            digest: digest?,
            stop: file.stop,
            fallback: file.fallback,
        })
    }

    /// The rule's chat webhook, read from its environment variable now. The URL is a secret:
    /// problems name the variable, never the value.
    fn chat_webhook(&mut self, place: &str, env: Option<&str>) -> Option<Option<ChatWebhook>> {
        let Some(env) = env else {
            return Some(None);
        };
        let place = format!("{place}, chat_webhook_env");
        let url = self.env_var(&place, env)?;
        let parsed = url::Url::parse(&url).ok();
        let host = parsed.as_ref().and_then(|u| u.host_str()).unwrap_or("");
        let scheme = parsed.as_ref().map_or("", |u| u.scheme());
        if !(scheme == "https" || (scheme == "http" && is_loopback(host))) || host.is_empty() {
            let message = format!("environment variable {env} does not hold an https:// URL");
            self.report(place, message);
            return None;
        }
        let url = Secret::new(url);
        Some(Some(ChatWebhook {
            env: env.to_owned(),
            url,
        }))
    }

    fn download_link(&mut self, place: &str, secs: Option<u64>) -> Option<Duration> {
        let valid_for = Duration::from_secs(secs?);
        if valid_for.is_zero() || valid_for > MAX_LINK_VALIDITY {
            let message = format!("must be between 1 and {}", MAX_LINK_VALIDITY.as_secs());
            self.report(
                format!("{place}, download_link_secs"),
                message + " (seven days)",
            );
            return None;
        }
        Some(valid_for)
    }

    /// The rule's digest, when it sets `digest_secs`: the window in bounds, the digest
    /// templates compiled, and no field the digest email cannot honour.
    fn rule_digest(&mut self, place: &str, file: &RuleFile) -> Option<Option<RuleDigest>> {
        let stray = [
            ("digest_subject", file.digest_subject.is_some()),
            ("digest_text", file.digest_text.is_some()),
            ("digest_html", file.digest_html.is_some()),
        ];
        let Some(secs) = file.digest_secs else {
            for (field, _) in stray.iter().filter(|(_, set)| *set) {
                self.report(format!("{place}, {field}"), "only used with digest_secs");
            }
            return Some(None);
        };
        let mut ok = (1..=MAX_DIGEST_SECS).contains(&secs);
        if !ok {
            let message = format!("must be between 1 and {MAX_DIGEST_SECS} (one day)");
            self.report(format!("{place}, digest_secs"), message);
        }
        // A digest is one email; per-upload chat posts and per-file links are not in it yet.
        for (field, set) in [
            ("chat_webhook_env", file.chat_webhook_env.is_some()),
            ("download_link_secs", file.download_link_secs.is_some()),
        ] {
            if set {
                self.report(
                    place,
                    format!("{field} cannot be combined with digest_secs"),
                );
                ok = false;
            }
        }
        let templates = self.digest_templates(place, file);
        ok.then_some(())?;
        Some(Some(RuleDigest {
            window: Duration::from_secs(secs),
            templates: Arc::new(templates?),
        }))
    }

    fn digest_templates(&mut self, place: &str, file: &RuleFile) -> Option<DigestTemplates> {
        let sources = DigestSources {
            subject: file.digest_subject.as_deref(),
            text: file.digest_text.as_deref(),
            html: file.digest_html.as_deref(),
        };
        match DigestTemplates::compile(sources) {
            Ok(templates) => Some(templates),
            Err(errors) => {
                for error in errors {
                    self.report(place, format!("digest {error}"));
                }
                None
            }
        }
    }

    fn recipient_count(&mut self, place: &str, file: &RuleFile) {
        let count = file.to.len() + file.cc.len() + file.bcc.len();
        if count == 0 && file.chat_webhook_env.is_none() {
            let message = "no recipients: set at least one of to, cc or bcc, or chat_webhook_env";
            self.report(place, message);
        } else if count > MAX_RECIPIENTS {
            let message = format!("{count} recipients; at most {MAX_RECIPIENTS} per message");
            self.report(place, message + " (use a mailing list address)");
        }
    }

    fn matcher(&mut self, place: &str, file: &RuleFile) -> Option<Matcher> {
        let lists = [
            ("bucket", &file.bucket),
            ("prefix", &file.prefix),
            ("suffix", &file.suffix),
            ("glob", &file.glob),
        ];
        for (field, list) in lists {
            self.match_list(&format!("{place}, {field}"), field, list);
        }
        let globs = file
            .glob
            .clone()
            .map(|g| self.globs(&format!("{place}, glob"), g));
        if let (Some(min), Some(max)) = (file.min_size_bytes, file.max_size_bytes)
            && min > max
        {
            let message = format!("min_size_bytes ({min}) is larger than max_size_bytes ({max})");
            self.report(place, message);
        }
        let suffixes = values(&file.suffix).into_iter().map(|s| s.to_lowercase());
        Some(Matcher {
            buckets: values(&file.bucket),
            prefixes: values(&file.prefix),
            suffixes: suffixes.collect(),
            globs: globs.map_or(Some(None), |g| g.map(Some))?,
            min_size: file.min_size_bytes,
            max_size: file.max_size_bytes,
        })
    }

    /// An empty list or an empty string would silently match everything (or nothing); the
    /// operator meant something else, so both are problems.
    fn match_list(&mut self, place: &str, field: &str, list: &Option<OneOrMany>) {
        let Some(list) = list else { return };
        let values = list.clone().into_vec();
        if values.is_empty() {
            self.report(
                place,
                format!("empty list; leave {field} out to match everything"),
            );
        } else if values.iter().any(String::is_empty) {
            self.report(
                place,
                format!("empty {field}; leave {field} out to match everything"),
            );
        }
    }

    fn globs(&mut self, place: &str, patterns: OneOrMany) -> Option<GlobSet> {
        let mut set = GlobSetBuilder::new();
        let mut ok = true;
        for pattern in patterns.into_vec() {
            match GlobBuilder::new(&pattern).literal_separator(true).build() {
                Ok(glob) => {
                    set.add(glob);
                }
                Err(e) => {
                    self.report(place, format!("invalid glob {pattern:?}: {}", e.kind()));
                    ok = false;
                }
            }
        }
        let set = set.build();
        ok.then_some(()).and(set.ok())
    }

    fn templates(&mut self, place: &str, file: &RuleFile) -> Option<Templates> {
        let sources = TemplateSources {
            subject: file.subject.as_deref(),
            text: file.text.as_deref(),
            html: file.html.as_deref(),
        };
        match Templates::compile(sources) {
            Ok(templates) => Some(templates),
            Err(errors) => {
                for error in errors {
                    self.report(place, error.to_string());
                }
                None
            }
        }
    }
}

/// The field named by serde's "unknown field `name`, expected ..." message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(field, _)| field)
}

/// Where an SMTP URL points.
struct SmtpEndpoint {
    host: String,
    port: u16,
    /// `smtps://`: TLS from the first byte.
    implicit: bool,
}

/// Loopback is the one place plain-text SMTP with a password stays on the machine.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn values(field: &Option<OneOrMany>) -> Vec<String> {
    field.clone().map(OneOrMany::into_vec).unwrap_or_default()
}

/// Names a rule by its `name` when it has one, and always by its position (1-based).
fn rule_place(entry: &toml::Value, index: usize) -> String {
    match entry.get("name").and_then(toml::Value::as_str) {
        Some(name) => format!("rule {name:?} (#{})", index + 1),
        None => format!("rule #{}", index + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Config, ConfigError> {
        let env = |name: &str| (name == "SMTP_USER" || name == "SMTP_PASS").then(|| "x".into());
        parse(text, Origin::BuiltIn, &env)
    }

    fn problems(text: &str) -> Vec<String> {
        match check(text) {
            Ok(_) => panic!("expected problems"),
            Err(e) => e.problems().iter().map(ToString::to_string).collect(),
        }
    }

    const GOOD: &str = r#"
        [sender]
        type = "smtp"
        url = "smtp://127.0.0.1:2525"
        tls = "none"
        from = "Uploads <uploads@example.com>"
        username_env = "SMTP_USER"
        password_env = "SMTP_PASS"

        [[rule]]
        name = "contracts"
        bucket = "legal"
        prefix = ["contracts/"]
        suffix = [".PDF", ".docx"]
        to = ["Legal <legal@example.com>"]
        time_zone = "Europe/Berlin"
    "#;

    #[test]
    fn good_config_resolves_every_field() {
        let config = check(GOOD).unwrap_or_else(|e| panic!("{e}: {:?}", e.problems()));
        let SenderKind::Smtp(smtp) = &config.sender.kind else {
            panic!("expected smtp");
        };
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.tls),
            ("127.0.0.1", 2525, Tls::None)
        );
        let (user, pass) = smtp.credentials.clone().expect("credentials");
        assert_eq!((user.as_str(), pass.expose()), ("x", "x"));
        let rule = &config.rules[0];
        assert_eq!(rule.matcher.suffixes, [".pdf", ".docx"]);
        assert_eq!(rule.to[0].email.to_string(), "legal@example.com");
        assert!(config.skip_folder_placeholders && config.skip_empty_objects);
    }

    #[test]
    fn every_problem_is_reported_in_one_run() {
        let text = r#"
            [sender]
            type = "carrier-pigeon"
            from = "a@example.com"

            [[rule]]
            name = "typo"
            to = ["a@example.com"]
            subjekt = "hello"

            [[rule]]
            name = "bad-address"
            to = ["not an address"]
        "#;
        let found = problems(text);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].starts_with("[sender]: unknown variant `carrier-pigeon`"));
        assert!(found[1].starts_with("rule \"typo\" (#1): unknown field `subjekt`"));
        assert!(found[2].starts_with("rule \"bad-address\" (#2), to[0]: invalid email address"));
    }

    #[test]
    fn unknown_time_zone_bad_sizes_and_link_validity_are_named() {
        let text = r#"
            [sender]
            type = "outbox"
            from = "a@example.com"
            [[rule]]
            name = "r"
            to = ["a@example.com"]
            time_zone = "Mars/Olympus"
            min_size_bytes = 10
            max_size_bytes = 5
            download_link_secs = 604801
        "#;
        let found = problems(text);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].contains("min_size_bytes (10) is larger than max_size_bytes (5)"));
        assert!(found[1].contains("unknown time zone \"Mars/Olympus\""));
        assert!(found[2].contains("download_link_secs: must be between 1 and 604800"));
    }

    #[test]
    fn missing_secret_and_url_credentials_are_problems() {
        let text = r#"
            unmatched = "fail"
            [sender]
            type = "smtp"
            url = "smtp://user:pw@mail.example.com"
            from = "a@example.com"
            username_env = "SMTP_USER"
            password_env = "NOT_SET"
            [[rule]]
            name = "r"
            to = ["a@example.com"]
        "#;
        let found = problems(text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].contains("credentials in the URL"));
        assert!(found[1].contains("environment variable NOT_SET is not set"));
    }

    #[test]
    fn structural_problems_are_named() {
        let found = problems("colour = \"blue\"\n");
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].starts_with("top level: unknown field `colour`"));
        assert!(found[1].starts_with("[sender]: missing section"));
        assert!(found[2].starts_with("rule: no [[rule]]"));
    }

    #[test]
    fn duplicate_rule_names_and_bad_globs_are_problems() {
        let text = r#"
            [sender]
            type = "outbox"
            from = "a@example.com"
            [[rule]]
            name = "r"
            to = ["a@example.com"]
            [[rule]]
            name = "r"
            to = ["a@example.com"]
            glob = "raw/[.csv"
        "#;
        let found = problems(text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].contains("another rule already has this name"));
        assert!(found[1].contains("invalid glob \"raw/[.csv\""));
    }

    const SES_RULE: &str = r#"
        [[rule]]
        name = "r"
        to = ["a@example.com"]
    "#;

    #[test]
    fn ses_sender_and_dynamodb_dedupe_resolve() {
        let text = r#"
            [sender]
            type = "ses"
            from = "Uploads <uploads@example.com>"
            region = "eu-west-1"
            configuration_set = "herald"
            [dedupe]
            type = "dynamodb"
            table = "herald-dedupe"
        "#;
        let config = check(&format!("{text}{SES_RULE}")).unwrap_or_else(|e| panic!("{e:?}"));
        let SenderKind::Ses(ses) = &config.sender.kind else {
            panic!("expected ses");
        };
        assert_eq!(ses.region.as_deref(), Some("eu-west-1"));
        assert_eq!(ses.configuration_set.as_deref(), Some("herald"));
        let dedupe = config.dedupe.expect("dedupe section");
        let table = "herald-dedupe".to_owned();
        assert_eq!(dedupe.backend, DedupeBackend::DynamoDb { table });
        assert_eq!(dedupe.retention, Duration::from_secs(7 * 24 * 3600));
    }

    #[test]
    fn dedupe_is_optional_and_memory_takes_a_retention() {
        let sender = "[sender]\ntype = \"ses\"\nfrom = \"a@example.com\"\n";
        let config = check(&format!("{sender}{SES_RULE}")).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(config.dedupe.is_none());
        let memory = "[dedupe]\ntype = \"memory\"\nretention_days = 2\n";
        let config = check(&format!("{sender}{memory}{SES_RULE}"));
        let dedupe = config.unwrap_or_else(|e| panic!("{e:?}")).dedupe;
        assert_eq!(
            dedupe.map(|d| d.retention),
            Some(Duration::from_secs(2 * 24 * 3600))
        );
    }

    #[test]
    fn local_dedupe_takes_a_path_with_a_default() {
        let sender = "[sender]\ntype = \"ses\"\nfrom = \"a@example.com\"\n";
        let local = "[dedupe]\ntype = \"local\"\n";
        let config = check(&format!("{sender}{local}{SES_RULE}"));
        let dedupe = config.unwrap_or_else(|e| panic!("{e:?}")).dedupe;
        let path = PathBuf::from(".herald/state.redb");
        assert_eq!(
            dedupe.map(|d| d.backend),
            Some(DedupeBackend::Local { path })
        );
        let found = problems(&format!("{sender}{local}path = \"\"\n{SES_RULE}"));
        assert_eq!(found, ["[dedupe] path: \"\" is not a file path"]);
    }

    #[test]
    fn dead_letter_defaults_and_problems() {
        let sender = "[sender]\ntype = \"ses\"\nfrom = \"a@example.com\"\n";
        let config = check(&format!("{sender}[dead_letter]\n{SES_RULE}"));
        let settings = config.unwrap_or_else(|e| panic!("{e:?}")).dead_letter;
        assert_eq!(
            settings,
            Some(DeadLetterSettings {
                path: PathBuf::from(".herald/state.redb"),
                max_entries: 1000,
                max_age: Duration::from_secs(30 * 24 * 3600),
            })
        );
        let bad = "[dead_letter]\npath = \"\"\nmax_entries = 0\nmax_age_days = 0\nttl = 1\n";
        let found = problems(&format!("{sender}{bad}{SES_RULE}"));
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[0].starts_with("[dead_letter]: unknown field `ttl`"));
        assert_eq!(found[1], "[dead_letter] path: \"\" is not a file path");
        assert_eq!(found[2], "[dead_letter] max_entries: must be at least 1");
        assert_eq!(found[3], "[dead_letter] max_age_days: must be at least 1");
    }

    #[test]
    fn queue_defaults_bring_a_dead_letter_store_in_the_same_file() {
        let sender = "[sender]\ntype = \"ses\"\nfrom = \"a@example.com\"\n";
        let text = format!("{sender}[dedupe]\ntype = \"local\"\n[queue]\n{SES_RULE}");
        let config = check(&text).unwrap_or_else(|e| panic!("{e:?}"));
        let state = PathBuf::from(".herald/state.redb");
        assert_eq!(
            config.queue,
            Some(QueueSettings {
                path: state.clone(),
                max_entries: 100_000,
                concurrency: 16,
                retry_max: Duration::from_secs(300),
                max_age: Duration::from_secs(24 * 3600),
                drain_grace: Duration::from_secs(10),
            })
        );
        assert_eq!(config.dead_letter, Some(DeadLetterSettings::in_file(state)));
    }

    #[test]
    fn queue_problems_are_all_reported() {
        let sender = "[sender]\ntype = \"ses\"\nfrom = \"a@example.com\"\n";
        let bad = "[queue]\npath = \"state/\"\nconcurrency = 0\nmax_age_hours = 0\nsize = 1\n";
        let found = problems(&format!("{sender}{bad}{SES_RULE}"));
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(found[0].starts_with("[queue]: unknown field `size`"));
        assert_eq!(found[1], "[queue] path: \"state/\" is not a file path");
        assert_eq!(found[2], "[queue] concurrency: must be at least 1");
        assert_eq!(found[3], "[queue] max_age_hours: must be at least 1");
        assert!(
            found[4].starts_with("[queue]: needs a [dedupe] store"),
            "no [dedupe] at all"
        );

        let memory = format!("{sender}[dedupe]\ntype = \"memory\"\n[queue]\n{SES_RULE}");
        let found = problems(&memory);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].starts_with("[queue]: needs a [dedupe] store that survives restarts"));

        let both =
            format!("{sender}[dedupe]\ntype = \"memory\"\n[queue]\nconcurrency = 5000\n{SES_RULE}");
        let found = problems(&both);
        assert_eq!(found.len(), 2, "every [queue] problem at once: {found:#?}");
    }

    #[test]
    fn bad_ses_and_dedupe_fields_are_all_reported() {
        let text = r#"
            [sender]
            type = "ses"
            from = "a@example.com"
            region = "Frankfurt"
            [dedupe]
            type = "dynamodb"
            table = "no spaces allowed"
        "#;
        let found = problems(&format!("{text}{SES_RULE}"));
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].starts_with("[sender] region: \"Frankfurt\" is not an AWS region"));
        assert!(found[1].starts_with("[dedupe] table: \"no spaces allowed\" is not"));
    }

    #[test]
    fn dedupe_fields_are_strict() {
        let cases = [
            ("type = \"memory\"\ntable = \"t\"", "unknown field `table`"),
            ("type = \"dynamodb\"", "missing field `table`"),
            (
                "type = \"dynamodb\"\ntable = \"abc\"\nretention_days = 0",
                "at least 1",
            ),
            ("type = \"redis\"", "unknown variant `redis`"),
            (
                "type = \"dynamodb\"\ntable = \"abc\"\nttl = 3",
                "unknown field `ttl`",
            ),
        ];
        for (dedupe, expected) in cases {
            let text = format!(
                "[sender]\ntype = \"ses\"\nfrom = \"a@example.com\"\n[dedupe]\n{dedupe}\n{SES_RULE}"
            );
            let found = problems(&text);
            assert_eq!(found.len(), 1, "{dedupe}: {found:#?}");
            assert!(found[0].starts_with("[dedupe]"), "{found:#?}");
            assert!(found[0].contains(expected), "{dedupe}: {found:#?}");
        }
    }

    #[test]
    fn ses_fields_are_strict() {
        let text = "[sender]\ntype = \"ses\"\nfrom = \"a@example.com\"\nurl = \"smtp://x\"\n";
        let found = problems(&format!("{text}{SES_RULE}"));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with("[sender]: unknown field `url`"),
            "{found:#?}"
        );
    }

    #[test]
    fn unknown_fields_do_not_hide_other_problems_in_the_same_rule() {
        let text = r#"
            [sender]
            type = "outbox"
            from = "a@example.com"
            colour = "blue"
            [[rule]]
            name = "r"
            subjekt = "x"
            to = ["a@example.com", "A <a@example.com>"]
            cc = ["not an address"]
            bucket = []
            suffix = ""
            time_zone = "Nowhere/Town"
            [[rule]]
            name = "r"
            to = ["b@example.com"]
        "#;
        let found = problems(text);
        let expected = [
            "[sender]: unknown field `colour`",
            "rule \"r\" (#1): unknown field `subjekt`",
            "rule \"r\" (#1), bucket: empty list; leave bucket out to match everything",
            "rule \"r\" (#1), suffix: empty suffix; leave suffix out to match everything",
            "rule \"r\" (#1), to[1]: a@example.com is listed twice",
            "rule \"r\" (#1), cc[0]: invalid email address \"not an address\"",
            "rule \"r\" (#1), time_zone: unknown time zone \"Nowhere/Town\"",
            "rule \"r\" (#2): another rule already has this name",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (found, expected) in found.iter().zip(expected) {
            assert!(
                found.starts_with(expected),
                "{found:?} should start with {expected:?}"
            );
        }
    }

    #[test]
    fn doubtful_smtp_settings_are_problems() {
        let text = r#"
            [sender]
            type = "smtp"
            url = "smtps://mail.example.com/inbox?x=1"
            tls = "none"
            from = "a@example.com"
            username_env = "SMTP_USER"
            password_env = "EMPTY"
            timeout_secs = 0
            [[rule]]
            name = "r"
            to = ["a@example.com"]
        "#;
        let env = |name: &str| match name {
            "SMTP_USER" => Some("u".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let err = parse(text, Origin::BuiltIn, &env).expect_err("problems");
        let found: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
        let expected = [
            "[sender] url: \"smtps://mail.example.com/inbox?x=1\": only a host and a port",
            "[sender] tls: smtps:// means TLS from the first byte",
            "[sender] password_env: environment variable EMPTY is empty",
            "[sender] timeout_secs: must be at least 1",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (found, expected) in found.iter().zip(expected) {
            assert!(
                found.starts_with(expected),
                "{found:?} should start with {expected:?}"
            );
        }
    }

    #[test]
    fn password_in_plain_text_over_the_network_is_a_problem() {
        let config =
            |host: &str| GOOD.replace("smtp://127.0.0.1:2525", &format!("smtp://{host}:2525"));
        assert!(check(&config("127.0.0.1")).is_ok());
        let found = problems(&config("mail.example.com"));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].starts_with("[sender] tls: credentials would cross the network"));
    }

    /// Checks `text` with the API keys and webhook URLs the HTTP sender tests name.
    fn check_http(text: &str) -> Result<Config, ConfigError> {
        let env = |name: &str| match name {
            "SENDGRID_API_KEY" => Some("SG.key".to_owned()),
            "MAILGUN_API_KEY" => Some("key-mg".to_owned()),
            "SLACK_WEBHOOK_URL" => Some("https://hooks.slack.com/services/T/B/SECRET".to_owned()),
            "PLAIN_WEBHOOK_URL" => Some("http://chat.example.com/hook/SECRET".to_owned()),
            _ => None,
        };
        parse(text, Origin::BuiltIn, &env)
    }

    fn http_problems(text: &str) -> Vec<String> {
        match check_http(text) {
            Ok(_) => panic!("expected problems"),
            Err(e) => e.problems().iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn sendgrid_sender_resolves_with_defaults_and_an_eu_url() {
        let text = r#"
            [sender]
            type = "sendgrid"
            from = "Uploads <uploads@example.com>"
            api_key_env = "SENDGRID_API_KEY"
        "#;
        let config = check_http(&format!("{text}{SES_RULE}")).unwrap_or_else(|e| panic!("{e:?}"));
        let SenderKind::SendGrid(sendgrid) = &config.sender.kind else {
            panic!("expected sendgrid");
        };
        assert_eq!(sendgrid.api_url, "https://api.sendgrid.com");
        assert_eq!(sendgrid.api_key.expose(), "SG.key");
        assert_eq!(sendgrid.http.max_wait, Duration::from_secs(10));
        assert!(!format!("{config:?}").contains("SG.key"));

        let eu = text.to_owned()
            + "api_url = \"https://api.eu.sendgrid.com/\"\nrate_limit_wait_secs = 0\n";
        let config = check_http(&format!("{eu}{SES_RULE}")).unwrap_or_else(|e| panic!("{e:?}"));
        let SenderKind::SendGrid(sendgrid) = &config.sender.kind else {
            panic!("expected sendgrid");
        };
        assert_eq!(sendgrid.api_url, "https://api.eu.sendgrid.com");
        assert_eq!(sendgrid.http.max_wait, Duration::ZERO);
    }

    #[test]
    fn mailgun_sender_resolves() {
        let text = r#"
            [sender]
            type = "mailgun"
            from = "uploads@mg.example.com"
            domain = "mg.example.com"
            api_key_env = "MAILGUN_API_KEY"
            api_url = "https://api.eu.mailgun.net"
            timeout_secs = 5
        "#;
        let config = check_http(&format!("{text}{SES_RULE}")).unwrap_or_else(|e| panic!("{e:?}"));
        let SenderKind::Mailgun(mailgun) = &config.sender.kind else {
            panic!("expected mailgun");
        };
        assert_eq!(mailgun.api_url, "https://api.eu.mailgun.net");
        assert_eq!(mailgun.domain, "mg.example.com");
        assert_eq!(mailgun.api_key.expose(), "key-mg");
        assert_eq!(mailgun.http.timeout, Duration::from_secs(5));
    }

    #[test]
    fn http_sender_problems_are_all_reported() {
        let text = r#"
            [sender]
            type = "mailgun"
            from = "uploads@mg.example.com"
            domain = "mg.example.com/../x"
            api_key_env = "MAILGUN_KEY_NOT_SET"
            api_url = "http://api.mailgun.net/v3"
            timeout_secs = 0
        "#;
        let found = http_problems(&format!("{text}{SES_RULE}"));
        let expected = [
            "[sender] api_url: \"http://api.mailgun.net/v3\" must be https://host[:port]",
            "[sender] domain: \"mg.example.com/../x\" is not a domain name",
            "[sender] api_key_env: environment variable MAILGUN_KEY_NOT_SET is not set",
            "[sender] timeout_secs: must be at least 1",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (found, expected) in found.iter().zip(expected) {
            assert!(
                found.starts_with(expected),
                "{found:?} should start with {expected:?}"
            );
        }
        let sendgrid = "[sender]\ntype = \"sendgrid\"\nfrom = \"a@example.com\"\n";
        let found = http_problems(&format!("{sendgrid}{SES_RULE}"));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with("[sender]: missing field `api_key_env`"),
            "{found:#?}"
        );
    }

    #[test]
    fn sendgrid_needs_a_to_recipient_in_every_rule() {
        let text = r#"
            [sender]
            type = "sendgrid"
            from = "a@example.com"
            api_key_env = "SENDGRID_API_KEY"
            [[rule]]
            name = "quiet"
            bcc = ["a@example.com"]
        "#;
        let found = http_problems(text);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with("rule \"quiet\", to: sendgrid needs"),
            "{found:#?}"
        );
    }

    const OUTBOX: &str = "[sender]\ntype = \"outbox\"\nfrom = \"a@example.com\"\n";

    #[test]
    fn a_chat_webhook_makes_recipients_optional() {
        let text = r#"
            [[rule]]
            name = "chat-only"
            chat_webhook_env = "SLACK_WEBHOOK_URL"
            [[rule]]
            name = "both"
            to = ["a@example.com"]
            chat_webhook_env = "SLACK_WEBHOOK_URL"
        "#;
        let config = check_http(&format!("{OUTBOX}{text}")).unwrap_or_else(|e| panic!("{e:?}"));
        let chat = config.rules[0].chat.as_ref().expect("chat webhook");
        assert_eq!(chat.env, "SLACK_WEBHOOK_URL");
        assert!(chat.url.expose().ends_with("/SECRET"));
        assert!(!config.rules[0].has_recipients());
        assert!(config.rules[1].has_recipients() && config.rules[1].chat.is_some());
        assert!(!format!("{config:?}").contains("SECRET"));
    }

    #[test]
    fn chat_webhook_problems_name_the_variable_never_the_url() {
        let text = r#"
            [[rule]]
            name = "unset"
            chat_webhook_env = "NOT_SET"
            [[rule]]
            name = "plain"
            chat_webhook_env = "PLAIN_WEBHOOK_URL"
            [[rule]]
            name = "nobody"
            prefix = "x/"
        "#;
        let found = http_problems(&format!("{OUTBOX}{text}"));
        let expected = [
            "rule \"unset\" (#1), chat_webhook_env: environment variable NOT_SET is not set",
            "rule \"plain\" (#2), chat_webhook_env: environment variable PLAIN_WEBHOOK_URL \
             does not hold an https:// URL",
            "rule \"nobody\" (#3): no recipients: set at least one of to, cc or bcc, or \
             chat_webhook_env",
        ];
        assert_eq!(found, expected);
        assert!(!found.concat().contains("SECRET"));
    }

    #[test]
    fn toml_syntax_error_is_its_own_error() {
        let err = check("[sender\n").expect_err("syntax error");
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    }

    #[test]
    fn serve_defaults_without_the_section() {
        let config = check(GOOD).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(config.serve, ServeSettings::default());
    }

    #[test]
    fn serve_resolves_its_token_and_address() {
        let serve = "[serve]\nlisten = \"0.0.0.0:9090\"\nbody_limit_bytes = 65536\n\
                     minio_token_env = \"SMTP_PASS\"\n";
        let config = check(&format!("{GOOD}{serve}")).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            config.serve.listen,
            Some(SocketAddr::from(([0, 0, 0, 0], 9090)))
        );
        assert_eq!(config.serve.body_limit, 65536);
        assert_eq!(
            config.serve.minio_token.map(|t| t.expose().to_owned()),
            Some("x".into())
        );
    }

    #[test]
    fn every_serve_problem_is_reported() {
        let serve = "[serve]\nlisten = \"localhost\"\nbody_limit_bytes = 10\n\
                     minio_token_env = \"NO_SUCH_VAR\"\nsns_topics = [\"uploads\"]\n";
        let found = problems(&format!("{GOOD}{serve}"));
        assert_eq!(
            found,
            [
                "[serve] listen: \"localhost\" is not an address such as \"0.0.0.0:8080\"",
                "[serve] body_limit_bytes: must be between 1024 and 67108864",
                "[serve] minio_token_env: environment variable NO_SUCH_VAR is not set",
                "[serve] sns_topics: \"uploads\" is not an SNS topic ARN (arn:aws:sns:...)",
            ]
        );
    }

    /// `[sender]` of [`GOOD`] with extra lines after its `type`.
    #[test]
    fn digest_rules_resolve_with_the_default_state_file() {
        let text = format!(
            "{OUTBOX}[[rule]]\nname = \"d\"\nto = [\"a@example.com\"]\ndigest_secs = 300\n\
             digest_subject = \"{{{{ digest.count }}}} files\"\n"
        );
        let config = check(&text).unwrap_or_else(|e| panic!("{:?}", e.problems()));
        let digest = config.rules[0].digest.as_ref().map(|d| d.window);
        assert_eq!(digest, Some(Duration::from_secs(300)));
        assert!(config.has_digests());
        assert_eq!(
            config.digest.path,
            PathBuf::from(crate::store::DEFAULT_PATH)
        );

        let plain = check(&format!(
            "{OUTBOX}[digest]\npath = \"w.redb\"\n\
             [[rule]]\nname = \"p\"\nto = [\"a@example.com\"]\n"
        ));
        let plain = plain.unwrap_or_else(|e| panic!("{:?}", e.problems()));
        assert!(!plain.has_digests());
        assert_eq!(plain.digest.path, PathBuf::from("w.redb"));
    }

    #[test]
    fn every_digest_problem_is_reported() {
        let text = format!(
            "{OUTBOX}[digest]\npath = \"\"\nttl = 1\n\
             [[rule]]\nname = \"zero\"\nto = [\"a@example.com\"]\ndigest_secs = 0\n\
             [[rule]]\nname = \"long\"\nto = [\"a@example.com\"]\ndigest_secs = 86401\n\
             download_link_secs = 60\ndigest_text = \"{{{{ digest.nope }}}}\"\n\
             [[rule]]\nname = \"stray\"\nto = [\"a@example.com\"]\ndigest_html = \"x\"\n"
        );
        let found = problems(&text);
        let expected = [
            "[digest]: unknown field `ttl`",
            "[digest] path: \"\" is not a file path",
            "rule \"zero\" (#1), digest_secs: must be between 1 and 86400 (one day)",
            "rule \"long\" (#2), digest_secs: must be between 1 and 86400 (one day)",
            "rule \"long\" (#2): download_link_secs cannot be combined with digest_secs",
            "rule \"long\" (#2): digest text template",
            "rule \"stray\" (#3), digest_html: only used with digest_secs",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (found, expected) in found.iter().zip(expected) {
            assert!(
                found.starts_with(expected),
                "{found:?} should start with {expected:?}"
            );
        }
    }

    fn good_with_sender_lines(lines: &str) -> String {
        GOOD.replacen("type = \"smtp\"", &format!("type = \"smtp\"\n{lines}"), 1)
    }

    #[test]
    fn retries_and_no_rate_limit_by_default() {
        let config = check(GOOD).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(config.sender.retry, RetryPolicy::default());
        assert_eq!(config.sender.rate_limit, None);
    }

    #[test]
    fn every_sender_type_takes_retry_and_rate_fields() {
        let text = r#"
            [sender]
            type = "outbox"
            from = "a@example.com"
            max_attempts = 1
            retry_max_secs = 5
            rate_per_sec = 14
            burst = 3
            [[rule]]
            name = "r"
            to = ["a@example.com"]
        "#;
        let config = check(text).unwrap_or_else(|e| panic!("{e:?}"));
        let retry = RetryPolicy {
            max_attempts: 1,
            max_wait: Duration::from_secs(5),
        };
        assert_eq!(config.sender.retry, retry);
        let rate = RateLimit {
            per_sec: 14.0,
            burst: 3,
        };
        assert_eq!(config.sender.rate_limit, Some(rate));
    }

    #[test]
    fn ses_sandbox_preset_is_one_a_second() {
        let config = check(&good_with_sender_lines("rate = \"ses-sandbox\""));
        let config = config.unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(config.sender.rate_limit, Some(RateLimit::SES_SANDBOX));
    }

    #[test]
    fn every_retry_and_rate_problem_is_reported() {
        let lines = "max_attempts = 0\nrate = \"turbo\"\nburst = 0\nretries = 3";
        let found = problems(&good_with_sender_lines(lines));
        assert_eq!(
            found,
            [
                "[sender] max_attempts: must be at least 1 (1 never retries)",
                "[sender] burst: only applies with `rate_per_sec`, not a named `rate`",
                "[sender] rate: unknown rate `turbo`, expected \"ses-sandbox\"",
                "[sender]: unknown field `retries`, expected one of `from`, `url`, `tls`, \
                 `username_env`, `password_env`, `timeout_secs`, `pool_max`, or one every type \
                 shares: `max_attempts`, `retry_max_secs`, `rate`, `rate_per_sec`, `burst`",
            ]
        );
    }

    #[test]
    fn rate_and_rate_per_sec_exclude_each_other_and_must_be_sane() {
        let both = problems(&good_with_sender_lines(
            "rate = \"ses-sandbox\"\nrate_per_sec = 2",
        ));
        assert_eq!(
            both,
            ["[sender] rate: set either `rate` or `rate_per_sec`, not both"]
        );
        let tiny = problems(&good_with_sender_lines("rate_per_sec = 0.0"));
        assert_eq!(
            tiny,
            ["[sender] rate_per_sec: must be a number of at least 0.001"]
        );
    }
}
