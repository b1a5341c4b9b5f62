//! Rendering: turns an [`ObjectCreated`] and a rule into an email's subject, text and HTML.
//!
//! Templates are MiniJinja, compiled once at start-up into [`Templates`] and rendered for every
//! event. Event data is always data: a file name is never parsed as template source, is
//! HTML-escaped in the HTML part, and cannot break the subject onto a second header line.
//!
//! Variables available to templates (optional values are `none` when unknown, so templates
//! can test them with `{% if object.uploader %}`; a `none` prints as nothing):
//!
//! | variable | value |
//! | --- | --- |
//! | `object.name` | file name, the key's last segment |
//! | `object.key` | full decoded key |
//! | `object.folder` | key without the file name, e.g. `reports/2024/` |
//! | `object.bucket` | bucket or container |
//! | `object.size` | size in bytes (integer) |
//! | `object.size_human` | size in binary units, e.g. `1.5 KiB` |
//! | `object.size_exact` | size with thousands separators, e.g. `16,777,216` |
//! | `object.content_type`, `object.etag`, `object.version_id` | optional |
//! | `object.uploader`, `object.source_ip`, `object.region` | optional |
//! | `object.provider` | `aws`, `minio` or `dev` |
//! | `object.event_name` | the provider's event name, e.g. `ObjectCreated:Put` |
//! | `object.time` | event time in the rule's time zone, e.g. `2024-10-01 14:03:22 CEST` |
//! | `object.time_utc` | event time in RFC 3339, e.g. `2024-10-01T12:03:22Z` |
//! | `object.download_url` | presigned GET link, when the rule sets `download_link_secs` |
//! | `object.download_expires` | when that link stops working, in the rule's time zone |
//! | `rule.name` | the rule's name |
//! | `rule.time_zone` | the rule's IANA time zone name, e.g. `Europe/Berlin` |

use std::fmt;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, context};

use crate::event::{ObjectCreated, Provider};

pub mod digest;
pub mod format;

const DEFAULT_SUBJECT: &str = include_str!("templates/subject.txt");
const DEFAULT_TEXT: &str = include_str!("templates/text.txt");
const DEFAULT_HTML: &str = include_str!("templates/html.html");

/// Template sources for one rule, as written in the config.
#[derive(Debug, Clone, Copy, Default)]
pub struct TemplateSources<'a> {
    /// Subject template; `None` uses the built-in default.
    pub subject: Option<&'a str>,
    /// Plain-text body template; `None` uses the built-in default.
    pub text: Option<&'a str>,
    /// HTML body template; `None` uses the built-in default, `Some("")` sends no HTML part.
    pub html: Option<&'a str>,
}

/// Which of the three templates a problem is in; ordered as they appear in an email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TemplatePart {
    /// The subject line.
    Subject,
    /// The plain-text body.
    Text,
    /// The HTML body.
    Html,
}

impl TemplatePart {
    /// All parts, in the order they are compiled and reported.
    const ALL: [TemplatePart; 3] = [
        TemplatePart::Subject,
        TemplatePart::Text,
        TemplatePart::Html,
    ];

    /// The template's name inside the MiniJinja environment.
    fn name(self) -> &'static str {
        match self {
            TemplatePart::Subject => "subject",
            TemplatePart::Text => "text",
            TemplatePart::Html => "html",
        }
    }
}

impl fmt::Display for TemplatePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A template that does not compile, or that fails on the sample event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Which template.
    pub part: TemplatePart,
    /// 1-based line in that template, where MiniJinja knows it.
    pub line: Option<usize>,
    /// What is wrong, e.g. `unexpected end of input`.
    pub message: String,
}

impl TemplateError {
    /// Describes a MiniJinja error, quoting the failing expression when it is known.
    fn new(part: TemplatePart, err: &minijinja::Error, source: &str) -> TemplateError {
        let mut message = match err.detail() {
            Some(detail) => detail.to_owned(),
            None => err.kind().to_string(),
        };
        // Runtime errors (unknown filter, bad operand) name no expression in their detail; a
        // syntax error's span is just the token where parsing stopped, which would mislead.
        let snippet = err.range().and_then(|range| source.get(range));
        if let Some(snippet) = snippet
            && err.kind() != ErrorKind::SyntaxError
            && !message.contains(snippet)
        {
            message = format!("{message} in `{snippet}`");
        }
        TemplateError {
            part,
            line: err.line(),
            message,
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} template, line {line}: {}", self.part, self.message),
            None => write!(f, "{} template: {}", self.part, self.message),
        }
    }
}

impl std::error::Error for TemplateError {}

/// A compiled template failed on a real event.
#[derive(Debug, thiserror::Error)]
#[error("{part} template failed to render")]
pub struct RenderError {
    /// Which template.
    pub part: TemplatePart,
    /// MiniJinja's description, with the template line.
    #[source]
    pub source: minijinja::Error,
}

/// What a template sees: the event, the rule that matched it and the rule's time zone.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The upload being announced.
    pub event: &'a ObjectCreated,
    /// Name of the rule that matched.
    pub rule: &'a str,
    /// Time zone for `object.time`.
    pub time_zone: &'a TimeZone,
    /// A download link for the object, when the rule asks for one and it could be signed.
    pub link: Option<&'a Link>,
}

/// A time-limited link to download the uploaded object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The URL, query string and signature included.
    pub url: String,
    /// When the link stops working.
    pub expires_at: Timestamp,
}

/// A rendered email body and subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line, control characters removed.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body, unless the rule turned HTML off.
    pub html: Option<String>,
}

/// The compiled subject, text and HTML templates of one kind of email, and how they render:
/// what an upload's email ([`Templates`]) and a digest ([`digest::DigestTemplates`]) share.
#[derive(Debug)]
pub(crate) struct Parts {
    env: Environment<'static>,
    has_html: bool,
}

/// The built-in sources a kind of email falls back on.
pub(crate) struct Defaults {
    pub(crate) subject: &'static str,
    pub(crate) text: &'static str,
    pub(crate) html: &'static str,
}

impl Parts {
    /// Compiles `sources` (the defaults where a part is missing; an empty HTML source sends
    /// no HTML part), then trial-renders every part that parsed against each of `trials`,
    /// returning every problem found rather than the first.
    pub(crate) fn compile(
        sources: &TemplateSources<'_>,
        defaults: &Defaults,
        trials: &[Value],
    ) -> Result<Parts, Vec<TemplateError>> {
        let mut env = environment();
        let mut errors = Vec::new();
        let mut parsed = Vec::new();
        for part in TemplatePart::ALL {
            let Some(source) = source_for(sources, defaults, part) else {
                continue;
            };
            match env.add_template_owned(part.name(), source.to_owned()) {
                Ok(()) => parsed.push((part, source)),
                Err(err) => errors.push(TemplateError::new(part, &err, source)),
            }
        }

        let has_html = source_for(sources, defaults, TemplatePart::Html).is_some();
        let parts = Parts { env, has_html };
        for (part, source) in parsed {
            let failed = trials
                .iter()
                .find_map(|values| parts.render_part(part, values).err());
            if let Some(err) = failed {
                errors.push(TemplateError::new(part, &err.source, source));
            }
        }
        // Parse errors were found first; report in subject, text, html order all the same.
        errors.sort_by_key(|err| err.part);
        match errors.is_empty() {
            true => Ok(parts),
            false => Err(errors),
        }
    }

    /// Renders the subject (kept to one line), the text and, if enabled, the HTML.
    pub(crate) fn render(&self, values: &Value) -> Result<Rendered, RenderError> {
        let subject = self.render_part(TemplatePart::Subject, values)?;
        let text = self.render_part(TemplatePart::Text, values)?;
        let html = match self.has_html {
            true => Some(self.render_part(TemplatePart::Html, values)?),
            false => None,
        };
        Ok(Rendered {
            subject: format::one_line(&subject),
            text,
            html,
        })
    }

    fn render_part(&self, part: TemplatePart, values: &Value) -> Result<String, RenderError> {
        let render = |name| self.env.get_template(name)?.render(values);
        render(part.name()).map_err(|source| RenderError { part, source })
    }
}

/// The three templates of one rule, compiled and checked.
///
/// Cheap to render many times and safe to share between tasks.
#[derive(Debug)]
pub struct Templates {
    parts: Parts,
}

impl Templates {
    /// Compiles the templates and trial-renders them against sample events, returning every
    /// problem found rather than the first.
    ///
    /// The trial render runs with strict undefined handling, so a misspelt variable such as
    /// `{{ object.nmae }}` is reported here, at `herald check` or start-up, not on the first
    /// upload. It renders twice, once with every optional field known and once with none, so
    /// both sides of an `{% if object.uploader %}` are exercised.
    pub fn compile(sources: TemplateSources<'_>) -> Result<Templates, Vec<TemplateError>> {
        let defaults = Defaults {
            subject: DEFAULT_SUBJECT,
            text: DEFAULT_TEXT,
            html: DEFAULT_HTML,
        };
        let parts = Parts::compile(&sources, &defaults, &trial_contexts())?;
        Ok(Templates { parts })
    }

    /// Renders the subject, text and (if enabled) HTML for one event.
    pub fn render(&self, ctx: &Context<'_>) -> Result<Rendered, RenderError> {
        self.parts.render(&template_context(ctx))
    }
}

/// The full and the sparse sample event, as template values.
fn trial_contexts() -> Vec<Value> {
    let tz = TimeZone::UTC;
    let link = sample_link();
    let samples = [(sample_event(), Some(&link)), (sparse_sample_event(), None)];
    samples
        .iter()
        .map(|(event, link)| {
            template_context(&Context {
                event,
                rule: "sample",
                time_zone: &tz,
                link: *link,
            })
        })
        .collect()
}

/// The source to compile for a part: the rule's own, the default, or none (HTML turned off).
fn source_for<'a>(
    sources: &TemplateSources<'a>,
    defaults: &Defaults,
    part: TemplatePart,
) -> Option<&'a str> {
    match part {
        TemplatePart::Subject => Some(sources.subject.unwrap_or(defaults.subject)),
        TemplatePart::Text => Some(sources.text.unwrap_or(defaults.text)),
        TemplatePart::Html => match sources.html {
            None => Some(defaults.html),
            Some("") => None,
            Some(source) => Some(source),
        },
    }
}

/// A MiniJinja environment with Herald's rules: strict about undefined names, HTML escaping
/// only in the HTML part, and `none` printing as nothing.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| {
        if name == TemplatePart::Html.name() {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            return Ok(());
        }
        minijinja::escape_formatter(out, state, value)
    });
    env
}

/// Builds the `object` and `rule` values an upload's templates see.
fn template_context(ctx: &Context<'_>) -> Value {
    let object = object_value(ctx.event, ctx.time_zone, ctx.link);
    let rule = rule_value(ctx.rule, ctx.time_zone);
    context! { object, rule }
}

/// What a template sees of one upload: `object` in an upload's email, each of `files` in a
/// digest.
fn object_value(event: &ObjectCreated, time_zone: &TimeZone, link: Option<&Link>) -> Value {
    let shown = |value: &Option<String>| value.as_deref().map(format::visible);
    context! {
        name => format::visible(event.file_name()),
        key => format::visible(&event.key),
        folder => format::visible(event.folder()),
        bucket => format::visible(&event.bucket),
        size => event.size,
        size_human => format::size_human(event.size),
        size_exact => format::size_exact(event.size),
        content_type => shown(&event.content_type),
        etag => shown(&event.etag),
        version_id => shown(&event.version_id),
        uploader => shown(&event.uploader),
        source_ip => shown(&event.source_ip),
        region => shown(&event.region),
        provider => event.provider.to_string(),
        event_name => format::visible(&event.event_name),
        time => event.event_time.map(|time| local_time(time, time_zone)),
        time_utc => event.event_time.map(|time| time.to_string()),
        download_url => link.map(|link| link.url.as_str()),
        download_expires => link.map(|link| local_time(link.expires_at, time_zone)),
    }
}

/// The `rule` value every template sees.
fn rule_value(name: &str, time_zone: &TimeZone) -> Value {
    context! {
        name => name,
        time_zone => time_zone_name(time_zone),
    }
}

/// `2024-10-01 14:03:22 CEST`: what a reader expects, in the rule's zone.
fn local_time(time: Timestamp, tz: &TimeZone) -> String {
    time.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// The IANA name, or the offset for a fixed-offset zone that has none.
fn time_zone_name(tz: &TimeZone) -> Option<String> {
    match tz.iana_name() {
        Some(name) => Some(name.to_owned()),
        None => tz.to_fixed_offset().ok().map(|offset| offset.to_string()),
    }
}

/// A download link for trial renders: the URL shape S3 presigning produces.
fn sample_link() -> Link {
    Link {
        url: "https://uploads.s3.eu-west-1.amazonaws.com/reports/2024/Q3%20report.pdf\
              ?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=86400&X-Amz-Signature=0"
            .into(),
        expires_at: Timestamp::UNIX_EPOCH,
    }
}

/// An event with every optional field filled in, for trial renders and `herald render`.
pub fn sample_event() -> ObjectCreated {
    ObjectCreated {
        provider: Provider::Aws,
        event_name: "ObjectCreated:Put".into(),
        bucket: "uploads".into(),
        key: "reports/2024/Q3 report.pdf".into(),
        size: 16_777_216,
        content_type: Some("application/pdf".into()),
        etag: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
        version_id: Some("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY".into()),
        sequencer: Some("0055AED6DCD90281E5".into()),
        event_time: Some(Timestamp::constant(1_727_791_402, 0)),
        uploader: Some("AIDAJDPLRKLG7UEXAMPLE".into()),
        source_ip: Some("203.0.113.7".into()),
        region: Some("eu-central-1".into()),
    }
}

/// The sample event with every optional field unknown.
fn sparse_sample_event() -> ObjectCreated {
    ObjectCreated {
        content_type: None,
        etag: None,
        version_id: None,
        sequencer: None,
        event_time: None,
        uploader: None,
        source_ip: None,
        region: None,
        ..sample_event()
    }
}

#[cfg(test)]
mod tests;
