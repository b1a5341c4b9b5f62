//! Configuration: one strict TOML file, checked into a [`Config`] before anything runs.
//!
//! [`file`] holds the types that mirror the file; [`validate`] checks them and collects every
//! problem at once, so an operator fixing a config sees the whole list in one run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::tz::TimeZone;
use lettre::message::Mailbox;

use crate::dedupe::DedupeSettings;
use crate::deliver::ses::SesSettings;
use crate::deliver::smtp::SmtpSettings;
use crate::render::Templates;
use crate::route::Matcher;

pub mod file;
pub mod validate;

pub use validate::{ConfigError, Problem};

/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "HERALD_CONFIG";

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
    /// `Reply-To`.
    pub reply_to: Option<Mailbox>,
    /// Overrides the sender's `From`.
    pub from: Option<Mailbox>,
    /// Compiled subject, text and HTML templates, shared because they are immutable.
    pub templates: Arc<Templates>,
    /// Time zone for times in emails.
    pub time_zone: TimeZone,
    /// Later rules are skipped when this one matches.
    pub stop: bool,
    /// Only considered when no ordinary rule matched.
    pub fallback: bool,
}

/// Where a configuration was found, so commands can say which one they used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Named by `--config`.
    Flag(PathBuf),
    /// Named by the [`CONFIG_ENV`] environment variable.
    Env(PathBuf),
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
            Origin::BuiltIn => None,
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag(p) => write!(f, "{} (from --config)", p.display()),
            Origin::Env(p) => write!(f, "{} (from ${CONFIG_ENV})", p.display()),
            Origin::DefaultPath(p) => write!(f, "{} (default path)", p.display()),
            Origin::BuiltIn => f.write_str("the built-in example config (examples/herald.toml)"),
        }
    }
}

/// Finds the config file: the flag, then [`CONFIG_ENV`], then [`DEFAULT_PATH`] if it exists.
///
/// Returns `None` when nothing names a file and the default path does not exist; callers
/// decide whether the built-in configuration is acceptable.
pub fn locate(flag: Option<&Path>, env_value: Option<&str>) -> Option<Origin> {
    if let Some(path) = flag {
        return Some(Origin::Flag(path.to_path_buf()));
    }
    if let Some(value) = env_value.filter(|v| !v.is_empty()) {
        return Some(Origin::Env(PathBuf::from(value)));
    }
    let default = PathBuf::from(DEFAULT_PATH);
    default.exists().then_some(Origin::DefaultPath(default))
}

/// Reads and checks the configuration at `origin`.
pub fn load(origin: Origin) -> Result<Config, ConfigError> {
    let text = match origin.path() {
        Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?,
        None => BUILT_IN.to_owned(),
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
            stop: false,
            fallback: false,
        }
    }

    #[test]
    fn flag_wins_over_environment() {
        let origin = locate(Some(Path::new("a.toml")), Some("b.toml"));
        assert_eq!(origin, Some(Origin::Flag("a.toml".into())));
        let origin = locate(None, Some("b.toml"));
        assert_eq!(origin, Some(Origin::Env("b.toml".into())));
    }

    #[test]
    fn built_in_config_is_valid() {
        let config = load(Origin::BuiltIn).unwrap_or_else(|e| panic!("{e}: {:?}", e.problems()));
        assert!(!config.rules.is_empty());
    }
}
