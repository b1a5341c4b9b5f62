//! Configuration: one strict TOML file, checked into a [`Config`] before anything runs.
//!
//! [`file`] holds the types that mirror the file; [`validate`] checks them and collects every
//! problem at once, so an operator fixing a config sees the whole list in one run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use lettre::message::Mailbox;

use crate::deadletter::DeadLetterSettings;
use crate::dedupe::DedupeSettings;
use crate::deliver::chat::ChatWebhook;
use crate::deliver::mailgun::MailgunSettings;
use crate::deliver::rate_limit::RateLimit;
use crate::deliver::retry::RetryPolicy;
use crate::deliver::sendgrid::SendGridSettings;
use crate::deliver::ses::SesSettings;
use crate::deliver::smtp::SmtpSettings;
use crate::queue::QueueSettings;
use crate::render::Templates;
use crate::render::digest::DigestTemplates;
use crate::route::Matcher;
use crate::runtime::dashboard::DashboardSettings;
use crate::runtime::serve::ServeSettings;
use crate::trace::TraceSettings;

pub mod file;
pub mod validate;

pub use validate::{ConfigError, Problem};

/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "HERALD_CONFIG";

/// Environment variable holding the whole config as TOML text, for platforms where an
/// environment variable is easier to set than a file (a deploy template builds it from its
/// parameters). Used when neither `--config` nor [`CONFIG_ENV`] names a file.
pub const CONFIG_TOML_ENV: &str = "HERALD_CONFIG_TOML";

/// Config file used when neither `--config` nor [`CONFIG_ENV`] names one.
pub const DEFAULT_PATH: &str = "herald.toml";

/// The example configuration shipped in `examples/herald.toml`: outbox delivery and a
/// catch-all rule. Used by `herald demo`, and by `herald dev` when no config file exists.
pub const BUILT_IN: &str = include_str!("../../examples/herald.toml");

/// A checked configuration, ready to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the configuration came from, for messages.
    pub origin: Origin,
    /// Where emails go.
    pub sender: SenderSettings,
    /// Skip folder placeholders (keys ending in `/`).
    pub skip_folder_placeholders: bool,
    /// Skip zero-byte objects.
    pub skip_empty_objects: bool,
    /// What happens to uploads no rule matches.
    pub unmatched: file::UnmatchedFile,
    /// Where sent emails are remembered; `None` when the file has no `[dedupe]`.
    pub dedupe: Option<DedupeSettings>,
    /// Where failed notifications are parked; `None` when the file has no `[dead_letter]`.
    pub dead_letter: Option<DeadLetterSettings>,
    /// The durable event queue of `serve` and `dev`; `None` when the file has no `[queue]`.
    pub queue: Option<QueueSettings>,
    /// Where traces of each upload are written; `None` when `[trace] enabled = false`.
    pub trace: Option<TraceSettings>,
    /// Where digest windows are kept (`[digest]`); the default state file without it.
    pub digest: DigestSettings,
    /// The HTTP receiver's settings (`herald serve`); defaults without `[serve]`.
    pub serve: ServeSettings,
    /// The local dashboard's settings (`[dashboard]`); defaults without it.
    pub dashboard: DashboardSettings,
    /// Rules in file order.
    pub rules: Vec<Rule>,
}

/// Where emails go, with every address and secret resolved.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    /// The default `From` mailbox.
    pub from: Mailbox,
    /// The backend.
    pub kind: SenderKind,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// How fast emails may start; `None` for no limit.
    pub rate_limit: Option<RateLimit>,
}

/// The delivery backend named by `[sender] type`.
#[derive(Debug, Clone)]
pub enum SenderKind {
    /// `.eml` files in a folder.
    Outbox {
        /// The folder.
        dir: PathBuf,
    },
    /// An SMTP server.
    Smtp(SmtpSettings),
    /// Amazon SES (API v2).
    Ses(SesSettings),
    /// SendGrid's v3 Mail Send API.
    SendGrid(SendGridSettings),
    /// Mailgun's Messages API.
    Mailgun(MailgunSettings),
}

/// A checked rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// Which uploads it matches.
    pub matcher: Matcher,
    /// Primary recipients.
    pub to: Vec<Mailbox>,
    /// Copied recipients.
    pub cc: Vec<Mailbox>,
    /// Blind-copied recipients.
    pub bcc: Vec<Mailbox>,
    /// A chat webhook that also hears about this rule's uploads.
    pub chat: Option<ChatWebhook>,
    /// `Reply-To`.
    pub reply_to: Option<Mailbox>,
    /// Overrides the sender's `From`.
    pub from: Option<Mailbox>,
    /// Compiled subject, text and HTML templates, shared because they are immutable.
    pub templates: Arc<Templates>,
    /// Time zone for times in emails.
    pub time_zone: TimeZone,
    /// How long download links in this rule's emails work; `None` means no link.
    pub download_link: Option<Duration>,
    /// Gather uploads into one email per window instead of one email each.
    pub digest: Option<RuleDigest>,
    /// Later rules are skipped when this one matches.
    pub stop: bool,
    /// Only considered when no ordinary rule matched.
    pub fallback: bool,
}

/// A rule's digest: how long a window stays open and what its email says.
#[derive(Debug, Clone)]
pub struct RuleDigest {
    /// From the window's first upload to its email.
    pub window: Duration,
    /// Compiled digest subject, text and HTML templates.
    pub templates: Arc<DigestTemplates>,
}

/// The checked `[digest]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestSettings {
    /// The state file that holds the windows.
    pub path: PathBuf,
}

impl Config {
    /// True when any rule gathers its uploads into digests.
    pub fn has_digests(&self) -> bool {
        self.rules.iter().any(|rule| rule.digest.is_some())
    }
}

impl Rule {
    /// True when the rule sends email (it may only post to a chat webhook).
    pub fn has_recipients(&self) -> bool {
        !(self.to.is_empty() && self.cc.is_empty() && self.bcc.is_empty())
    }
}

/// Where a configuration was found, so commands can say which one they used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Named on the command line (`--config`, or `herald check FILE`).
    Flag(PathBuf),
    /// Named by the [`CONFIG_ENV`] environment variable.
    Env(PathBuf),
    /// The TOML text of the [`CONFIG_TOML_ENV`] environment variable.
    Inline(String),
    /// Found at [`DEFAULT_PATH`].
    DefaultPath(PathBuf),
    /// No file: the built-in example configuration.
    BuiltIn,
}

impl Origin {
    /// The file path, if the configuration came from a file.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Origin::Flag(p) | Origin::Env(p) | Origin::DefaultPath(p) => Some(p),
            Origin::Inline(_) | Origin::BuiltIn => None,
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag(p) => write!(f, "{} (from the command line)", p.display()),
            Origin::Env(p) => write!(f, "{} (from ${CONFIG_ENV})", p.display()),
            Origin::Inline(_) => write!(f, "${CONFIG_TOML_ENV}"),
            Origin::DefaultPath(p) => write!(f, "{} (default path)", p.display()),
            Origin::BuiltIn => f.write_str("the built-in example config (examples/herald.toml)"),
        }
    }
}

/// Finds the config: the flag, then [`CONFIG_ENV`], then [`CONFIG_TOML_ENV`], then the file
/// at `default` if it exists ([`DEFAULT_PATH`] for the CLI, `herald.toml` beside the binary on
/// Lambda). `env` looks up environment variables.
///
/// Returns `None` when nothing names a config and the default file does not exist; callers
/// decide whether the built-in configuration is acceptable.
pub fn locate(
    flag: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    default: &Path,
) -> Option<Origin> {
    let set = |name| env(name).filter(|value| !value.is_empty());
    if let Some(path) = flag {
        return Some(Origin::Flag(path.to_path_buf()));
    }
    if let Some(path) = set(CONFIG_ENV) {
        return Some(Origin::Env(PathBuf::from(path)));
    }
    if let Some(text) = set(CONFIG_TOML_ENV) {
        return Some(Origin::Inline(text));
    }
    default
        .exists()
        .then(|| Origin::DefaultPath(default.to_path_buf()))
}

/// Reads and checks the configuration at `origin`.
pub fn load(origin: Origin) -> Result<Config, ConfigError> {
    let text = match &origin {
        Origin::Inline(text) => text.clone(),
        Origin::BuiltIn => BUILT_IN.to_owned(),
        Origin::Flag(path) | Origin::Env(path) | Origin::DefaultPath(path) => {
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?
        }
    };
    validate::parse(&text, origin, &|name| std::env::var(name).ok())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A rule that matches everything and mails `team@example.com`.
    pub(crate) fn rule(name: &str) -> Rule {
        Rule {
            name: name.into(),
            matcher: Matcher::default(),
            to: vec!["team@example.com".parse().expect("valid address")],
            cc: Vec::new(),
            bcc: Vec::new(),
            chat: None,
            reply_to: None,
            from: None,
            templates: Arc::new(
                Templates::compile(crate::render::TemplateSources {
                    subject: None,
                    text: None,
                    html: None,
                })
                .unwrap_or_else(|_| panic!("default templates compile")),
            ),
            time_zone: TimeZone::UTC,
            download_link: None,
            digest: None,
            stop: false,
            fallback: false,
        }
    }

    #[test]
    fn flag_then_path_variable_then_inline_variable() {
        let both = |name: &str| match name {
            CONFIG_ENV => Some("b.toml".to_owned()),
            CONFIG_TOML_ENV => Some("x = 1".to_owned()),
            _ => None,
        };
        let default = Path::new("/no/such/herald.toml");
        let origin = locate(Some(Path::new("a.toml")), &both, default);
        assert_eq!(origin, Some(Origin::Flag("a.toml".into())));
        assert_eq!(
            locate(None, &both, default),
            Some(Origin::Env("b.toml".into()))
        );
        let inline = |name: &str| both(name).filter(|_| name == CONFIG_TOML_ENV);
        let origin = locate(None, &inline, default);
        assert_eq!(origin, Some(Origin::Inline("x = 1".into())));
        assert_eq!(locate(None, &|_| None, default), None);
    }

    #[test]
    fn built_in_config_is_valid() {
        let config = load(Origin::BuiltIn).unwrap_or_else(|e| panic!("{e}: {:?}", e.problems()));
        assert!(!config.rules.is_empty());
    }
}
