//! The configuration file as written by the operator: one TOML document, strict.
//!
//! These types mirror the file and nothing more. [`super::validate`] turns them into the
//! checked [`super::Config`] the pipeline runs on. Every field here is documented for the
//! operator; `examples/herald.toml` shows them in use.

use std::path::PathBuf;

use serde::Deserialize;

/// Top-level sections of the file, in the order they are checked.
pub const SECTIONS: [&str; 12] = [
    "sender",
    "time_zone",
    "skip",
    "unmatched",
    "dedupe",
    "dead_letter",
    "queue",
    "digest",
    "trace",
    "serve",
    "dashboard",
    "rule",
];

/// `[sender]`: where rendered emails go. Exactly one sender per file.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SenderFile {
    /// Writes each email as a standard `.eml` file into a folder. The local default.
    Outbox(OutboxFile),
    /// Delivers through an SMTP server.
    Smtp(SmtpFile),
    /// Delivers through Amazon SES (API v2), with credentials from the standard AWS chain.
    Ses(SesFile),
    /// Delivers through SendGrid's v3 Mail Send API.
    #[serde(rename = "sendgrid")]
    SendGrid(SendGridFile),
    /// Delivers through Mailgun's Messages API.
    Mailgun(MailgunFile),
}

/// Keys of `[sender]` that every `type` shares: how hard and how fast Herald delivers. They are
/// read apart from the type's own keys, into [`DeliveryFile`].
pub const DELIVERY_FIELDS: [&str; 5] = [
    "max_attempts",
    "retry_max_secs",
    "rate",
    "rate_per_sec",
    "burst",
];

/// The `[sender]` keys shared by every `type`: retries of transient failures and a send rate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryFile {
    /// Attempts per email, counting the first, when the service fails in a way a retry may fix
    /// (connection trouble, SMTP 4xx, HTTP 429 or 5xx). Default 4; 1 never retries. Rejections
    /// (SMTP 5xx, HTTP 4xx) are never retried.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Most seconds spent waiting between attempts of one email, in total. Retries stop early
    /// rather than wait past it, also when the service asks for a longer pause. Default 20, so
    /// a retrying email still fits in the 30-second timeout of the shipped Lambda function;
    /// raise both together.
    #[serde(default = "default_retry_max_secs")]
    pub retry_max_secs: u64,
    /// A named send rate instead of `rate_per_sec`: `"ses-sandbox"` is one email a second, the
    /// limit of an SES account still in the sandbox. Default: no limit.
    pub rate: Option<String>,
    /// Most emails started per second, e.g. `14` or `0.5`. Emails beyond it wait their turn;
    /// they do not fail. Default: no limit.
    pub rate_per_sec: Option<f64>,
    /// How many emails may start back to back after a quiet spell, before `rate_per_sec`
    /// spaces them out. Needs `rate_per_sec`. Default 1.
    pub burst: Option<u32>,
}

fn default_max_attempts() -> u32 {
    4
}

fn default_retry_max_secs() -> u64 {
    20
}

/// `[sender]` with `type = "outbox"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxFile {
    /// The `From` address, e.g. `"Uploads <uploads@example.com>"`.
    pub from: String,
    /// Folder for the `.eml` files, relative to the working directory. Default `outbox`.
    #[serde(default = "default_outbox_dir")]
    pub dir: PathBuf,
}

fn default_outbox_dir() -> PathBuf {
    PathBuf::from("outbox")
}

/// `[sender]` with `type = "smtp"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpFile {
    /// The `From` address, e.g. `"Uploads <uploads@example.com>"`.
    pub from: String,
    /// `smtp://host[:port]` (port 587 by default) or `smtps://host[:port]` (implicit TLS,
    /// port 465 by default). No credentials in the URL: use `username_env`/`password_env`.
    pub url: String,
    /// `"starttls"` (required upgrade, the default for `smtp://`), `"implicit"` (the default for
    /// `smtps://`) or `"none"` (plain text: loopback or a trusted network only).
    pub tls: Option<String>,
    /// Name of the environment variable holding the SMTP user name, if the server wants auth.
    pub username_env: Option<String>,
    /// Name of the environment variable holding the SMTP password.
    pub password_env: Option<String>,
    /// Give up on an SMTP command after this many seconds. Default 30.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Most SMTP connections kept open at once. Default 4.
    #[serde(default = "default_pool_max")]
    pub pool_max: u32,
}

/// `[sender]` with `type = "ses"`.
///
/// Credentials come from the standard AWS chain (environment, profile, container or instance
/// role), never from this file. The role needs `ses:SendRawEmail` on the `from` identity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SesFile {
    /// The `From` address, e.g. `"Uploads <uploads@example.com>"`. Its address or domain must
    /// be a verified SES identity.
    pub from: String,
    /// AWS region of the SES account, e.g. `"eu-west-1"`. Default: the standard AWS chain
    /// (`AWS_REGION`, the profile).
    pub region: Option<String>,
    /// SES configuration set to send with, for event publishing and dedicated IPs. Default none.
    pub configuration_set: Option<String>,
}

/// `[sender]` with `type = "sendgrid"`.
///
/// The API key needs the Mail Send permission, and `from` must be a verified sender identity
/// (a single sender or an authenticated domain).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendGridFile {
    /// The `From` address, e.g. `"Uploads <uploads@example.com>"`.
    pub from: String,
    /// Name of the environment variable holding the API key, e.g. `"SENDGRID_API_KEY"`.
    pub api_key_env: String,
    /// API base URL. Default `https://api.sendgrid.com`; EU regional subusers use
    /// `https://api.eu.sendgrid.com`.
    pub api_url: Option<String>,
    /// Give up on a request after this many seconds. Default 30.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// When SendGrid answers 429 and asks for a wait of at most this many seconds, wait and
    /// send once more; a longer wait is left to the event's redelivery. Default 10; 0 never
    /// waits.
    #[serde(default = "default_rate_limit_wait_secs")]
    pub rate_limit_wait_secs: u64,
}

/// `[sender]` with `type = "mailgun"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailgunFile {
    /// The `From` address, e.g. `"Uploads <uploads@mg.example.com>"`.
    pub from: String,
    /// The Mailgun sending domain, e.g. `"mg.example.com"`.
    pub domain: String,
    /// Name of the environment variable holding the API key, e.g. `"MAILGUN_API_KEY"`.
    pub api_key_env: String,
    /// API base URL. Default `https://api.mailgun.net`; domains in the EU region need
    /// `https://api.eu.mailgun.net`.
    pub api_url: Option<String>,
    /// Give up on a request after this many seconds. Default 30.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// When Mailgun answers 429 and asks for a wait of at most this many seconds, wait and
    /// send once more. Default 10; 0 never waits.
    #[serde(default = "default_rate_limit_wait_secs")]
    pub rate_limit_wait_secs: u64,
}

fn default_rate_limit_wait_secs() -> u64 {
    10
}

fn default_timeout_secs() -> u64 {
    30
}

fn default_pool_max() -> u32 {
    4
}

/// `[skip]`: uploads nobody wants to hear about.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkipFile {
    /// Skip keys ending in `/`: "folders" that consoles create. Default true.
    #[serde(default = "yes")]
    pub folder_placeholders: bool,
    /// Skip zero-byte objects, such as the first write of a FUSE mount. Default true.
    #[serde(default = "yes")]
    pub empty_objects: bool,
}

impl Default for SkipFile {
    fn default() -> Self {
        SkipFile {
            folder_placeholders: true,
            empty_objects: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// `unmatched`: what happens to an upload that no rule matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnmatchedFile {
    /// Log it at INFO and count it; nothing is sent. The default.
    #[default]
    Ignore,
    /// Count it as a failure, so `herald invoke` exits non-zero and runtimes can dead-letter it.
    Fail,
}

/// `[dedupe]`: where Herald remembers which emails it already sent, so a redelivered event
/// does not send them again. Without this section, long-running commands (`herald worker`,
/// `herald dev`) remember in memory and `herald invoke` does not dedupe.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum DedupeFile {
    /// In process memory: forgotten on restart and not shared between processes.
    Memory(MemoryDedupeFile),
    /// An Amazon DynamoDB table, shared by every process that uses it.
    DynamoDb(DynamoDbFile),
    /// Herald's local state file: survives restarts, used by one process at a time.
    Local(LocalDedupeFile),
}

/// `[dedupe]` with `type = "memory"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryDedupeFile {
    /// Days to remember a sent email. Default 7.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

/// `[dedupe]` with `type = "dynamodb"`.
///
/// The table needs a string partition key named `pk` and no sort key; turn on its time to
/// live on the `expires_at` attribute so old entries go away by themselves. Credentials and
/// region come from the standard AWS chain; the role needs `dynamodb:PutItem` and
/// `dynamodb:DeleteItem` on the table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamoDbFile {
    /// Table name, e.g. `"herald-dedupe"`.
    pub table: String,
    /// Days to remember a sent email. Longer than the platform's redelivery window (SQS keeps
    /// a message up to 14 days). Default 7.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

/// `[dedupe]` with `type = "local"`.
///
/// A redb database file on this machine. It outlives restarts, so `herald invoke` run once per
/// event still sends each email once; only one process can have the file open at a time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalDedupeFile {
    /// Path of the state file, relative to the working directory; its folder is created when
    /// missing. The dead-letter store may share it. Default `.herald/state.redb`.
    #[serde(default = "default_state_path")]
    pub path: PathBuf,
    /// Days to remember a sent email. Default 7.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

/// `[dead_letter]`: keep notifications that failed for good (a permanent delivery error, a
/// template that cannot render) in the local state file, for `herald dlq` to list, replay or
/// drop. Without this section nothing is parked. Used by `herald invoke` and `herald dev`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterFile {
    /// Path of the state file, relative to the working directory; the same file as a local
    /// `[dedupe]` store by default. Default `.herald/state.redb`.
    #[serde(default = "default_state_path")]
    pub path: PathBuf,
    /// Most entries kept; parking one more drops the oldest, with a warning. Default 1000.
    #[serde(default = "default_max_entries")]
    pub max_entries: u32,
    /// Days an entry is kept after its last failure; older ones are dropped, with a warning,
    /// the next time something is parked. Default 30.
    #[serde(default = "default_max_age_days")]
    pub max_age_days: u32,
}

/// `[queue]`: `herald serve` and `herald dev` write each upload to a queue in the local state
/// file before they acknowledge it, and deliver from there: an acknowledged upload survives a
/// crash or restart and is retried until it is delivered or parked as a dead letter. Without
/// this section they deliver while the request waits and answer with the outcome, leaving
/// retries to whoever sent the event. Use it where the disk outlives the process (a VM, a
/// volume); on Cloud Run or other platforms with a throwaway disk leave it out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueFile {
    /// Path of the state file, relative to the working directory; the same file as a local
    /// `[dedupe]` store and `[dead_letter]` by default. Default `.herald/state.redb`.
    #[serde(default = "default_state_path")]
    pub path: PathBuf,
    /// Most uploads waiting; beyond it new ones are refused (HTTP 503, S3 `SlowDown`) so
    /// their sender retries. Default 100000.
    #[serde(default = "default_queue_max_entries")]
    pub max_entries: u32,
    /// Uploads delivered at the same time. Default 16.
    #[serde(default = "default_queue_concurrency")]
    pub concurrency: u32,
    /// Longest pause, in seconds, between two delivery attempts of one upload; the pause
    /// doubles from one second up to it. Default 300.
    #[serde(default = "default_queue_retry_max_secs")]
    pub retry_max_secs: u64,
    /// Hours an upload is retried before its failing notifications are parked in the
    /// dead-letter store for `herald dlq`. Without a `[dead_letter]` section, a queue keeps
    /// its dead letters in its own state file, with that section's defaults. Default 24.
    #[serde(default = "default_queue_max_age_hours")]
    pub max_age_hours: u32,
    /// Seconds a stopping process waits for deliveries in flight; the rest stay queued for
    /// the next start. Default 10.
    #[serde(default = "default_queue_drain_secs")]
    pub drain_secs: u64,
}

fn default_queue_max_entries() -> u32 {
    crate::queue::DEFAULT_MAX_ENTRIES
}

fn default_queue_concurrency() -> u32 {
    16
}

fn default_queue_retry_max_secs() -> u64 {
    300
}

fn default_queue_max_age_hours() -> u32 {
    24
}

fn default_queue_drain_secs() -> u64 {
    10
}

/// `[digest]`: where the open digest windows of rules with `digest_secs` are kept. Optional;
/// without it they live in the default state file. Used by `herald dev`, `herald serve` and
/// `herald worker`, which send each window's email when it closes, also after a restart.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigestFile {
    /// Path of the state file, relative to the working directory; the same file as a local
    /// `[dedupe]` store and `[dead_letter]` by default. Default `.herald/state.redb`.
    #[serde(default = "default_state_path")]
    pub path: PathBuf,
}

impl Default for DigestFile {
    fn default() -> Self {
        DigestFile {
            path: default_state_path(),
        }
    }
}

/// `[trace]`: what Herald did with each upload, written to JSON-lines files for
/// `herald events`, `herald trace` and the dashboard. On by default in `herald dev`, `serve`,
/// `worker`, `invoke` and `dlq replay`; Lambda does not trace (its disk is gone after the
/// invocation; its logs are in CloudWatch).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceFile {
    /// Set to false to write no traces. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Folder for the trace files, relative to the working directory; created when missing.
    /// Default `.herald/traces`.
    #[serde(default = "default_trace_dir")]
    pub dir: PathBuf,
    /// A trace file past this many MiB is closed and a new one started. Default 4.
    #[serde(default = "default_trace_file_mib")]
    pub max_file_mib: u32,
    /// Most trace files kept; the oldest beyond it are deleted. Default 8, so traces take at
    /// most 32 MiB by default.
    #[serde(default = "default_trace_files")]
    pub max_files: u32,
    /// Trace files not written to for this many days are deleted. Default 7.
    #[serde(default = "default_trace_age_days")]
    pub max_age_days: u32,
}

impl Default for TraceFile {
    fn default() -> Self {
        TraceFile {
            enabled: true,
            dir: default_trace_dir(),
            max_file_mib: default_trace_file_mib(),
            max_files: default_trace_files(),
            max_age_days: default_trace_age_days(),
        }
    }
}

fn default_trace_dir() -> PathBuf {
    PathBuf::from(".herald/traces")
}

fn default_trace_file_mib() -> u32 {
    4
}

fn default_trace_files() -> u32 {
    8
}

fn default_trace_age_days() -> u32 {
    7
}

fn default_max_entries() -> u32 {
    crate::deadletter::DEFAULT_MAX_ENTRIES
}

fn default_max_age_days() -> u32 {
    crate::deadletter::DEFAULT_MAX_AGE_DAYS
}

fn default_state_path() -> PathBuf {
    PathBuf::from(crate::store::DEFAULT_PATH)
}

fn default_retention_days() -> u32 {
    7
}

/// `[serve]`: the HTTP receiver of `herald serve`. Optional; other commands ignore it.
///
/// The SNS HTTPS route will add its own fields here when it lands.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeFile {
    /// Address to listen on, e.g. `"0.0.0.0:8080"`. `--listen` and the `PORT` environment
    /// variable (set by Cloud Run) take precedence. Default `"127.0.0.1:8080"`.
    pub listen: Option<String>,
    /// Largest request body accepted, in bytes; larger requests are answered 413. Default
    /// 1048576 (1 MiB, the most Event Grid puts in one delivery).
    #[serde(default = "default_body_limit_bytes")]
    pub body_limit_bytes: u64,
    /// Name of the environment variable holding the exact `Authorization` header value MinIO
    /// (or another S3-compatible server) sends to `POST /minio`, e.g. `"Bearer s3cr3t"`.
    /// Default: no token, so any caller that reaches the route is accepted.
    pub minio_token_env: Option<String>,
    /// SNS topic ARNs whose messages `POST /sns` accepts and whose subscriptions it confirms,
    /// after checking each message's signature. Default: none, so the route refuses all.
    #[serde(default)]
    pub sns_topics: Vec<String>,
}

impl Default for ServeFile {
    fn default() -> Self {
        ServeFile {
            listen: None,
            body_limit_bytes: default_body_limit_bytes(),
            minio_token_env: None,
            sns_topics: Vec::new(),
        }
    }
}

fn default_body_limit_bytes() -> u64 {
    1024 * 1024
}

/// `[dashboard]`: the local web dashboard (recent uploads, their traces, the rendered emails,
/// the dead letters). `herald dev` runs it unless `--no-dashboard`; `herald serve` only with
/// `enabled = true` or `--dashboard`. Other commands ignore it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardFile {
    /// Run the dashboard in `herald serve`. Default false. (`herald dev` always runs it unless
    /// started with `--no-dashboard`.)
    #[serde(default)]
    pub enabled: bool,
    /// Address for the dashboard's own listener, e.g. `"127.0.0.1:9001"`; port 0 picks a free
    /// one. `--dashboard ADDR` takes precedence but only accepts loopback addresses: an address
    /// other machines can reach has to be written here. The dashboard has no login, so only
    /// expose it behind something that has. Default `"127.0.0.1:9001"`.
    pub listen: Option<String>,
}

/// A value that may be written as one string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// `prefix = "reports/"`
    One(String),
    /// `prefix = ["reports/", "exports/"]`
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(value) => vec![value],
            OneOrMany::Many(values) => values,
        }
    }
}

/// One `[[rule]]`: which uploads it matches, who hears about them, and what they read.
///
/// Every rule that matches sends its own email, in file order, unless an earlier matching rule
/// has `stop = true`. All match fields must hold for a rule to match; a field left out matches
/// everything.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Unique name, shown in logs, `herald check` and the `X-Herald-Rule` header.
    pub name: String,
    /// Bucket name, or a list of them.
    pub bucket: Option<OneOrMany>,
    /// Key prefix (e.g. `"contracts/"`), or a list: any one must match. Case-sensitive.
    pub prefix: Option<OneOrMany>,
    /// Key suffix (e.g. `".pdf"`), or a list: any one must match. Case-insensitive.
    pub suffix: Option<OneOrMany>,
    /// Glob over the whole key (`*` stays within one folder, `**` crosses folders), or a list.
    pub glob: Option<OneOrMany>,
    /// Only objects of at least this many bytes.
    pub min_size_bytes: Option<u64>,
    /// Only objects of at most this many bytes.
    pub max_size_bytes: Option<u64>,
    /// Primary recipients, e.g. `["Legal <legal@example.com>"]`.
    #[serde(default)]
    pub to: Vec<String>,
    /// Copied recipients.
    #[serde(default)]
    pub cc: Vec<String>,
    /// Blind-copied recipients.
    #[serde(default)]
    pub bcc: Vec<String>,
    /// Name of the environment variable holding a Slack-compatible incoming webhook URL, e.g.
    /// `"SLACK_WEBHOOK_URL"`. The rule then also posts a short message there; with no `to`,
    /// `cc` or `bcc` it only posts.
    pub chat_webhook_env: Option<String>,
    /// `Reply-To` address.
    pub reply_to: Option<String>,
    /// Overrides the sender's `From` for this rule.
    pub from: Option<String>,
    /// Subject template (MiniJinja). Default: `New file in <bucket>: <file name>`.
    pub subject: Option<String>,
    /// Plain-text body template. Default: file name, path, size, type, time, uploader.
    pub text: Option<String>,
    /// HTML body template, auto-escaped. Default: the text body's facts as a table. Set to
    /// `""` to send text only.
    pub html: Option<String>,
    /// IANA time zone for times in this rule's emails, e.g. `"Europe/Berlin"`. Default: the
    /// file's top-level `time_zone`, else UTC.
    pub time_zone: Option<String>,
    /// Put a presigned download link to the object in this rule's emails, valid for this many
    /// seconds (at most 604800, seven days). The link is signed with Herald's own credentials,
    /// which then need `s3:GetObject` on the bucket. Default: no link.
    pub download_link_secs: Option<u64>,
    /// Gather this rule's uploads into one email per window of this many seconds (1 to 86400)
    /// instead of one email per upload. A window opens with the first upload and closes this
    /// long after; its email lists every file with the count and the total size. Needs a
    /// process that stays up (`herald dev`, `serve`, `worker`); `herald invoke` and Lambda send
    /// one email per upload instead. Cannot be combined with `chat_webhook_env` or
    /// `download_link_secs`. Default: no digest.
    pub digest_secs: Option<u64>,
    /// Subject template of the digest email; sees `digest` and `files` (see the README).
    /// Default: `<count> new files for <rule> (<total size>)`.
    pub digest_subject: Option<String>,
    /// Plain-text body template of the digest email. Default: one line per file.
    pub digest_text: Option<String>,
    /// HTML body template of the digest email, auto-escaped; `""` sends text only. Default:
    /// the files as a table.
    pub digest_html: Option<String>,
    /// When this rule matches, later rules are not considered. Default false.
    #[serde(default)]
    pub stop: bool,
    /// Considered only for uploads that no ordinary rule matched: a catch-all. Default false.
    #[serde(default)]
    pub fallback: bool,
}
