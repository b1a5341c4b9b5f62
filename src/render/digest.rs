//! Digest emails: one email for every upload a rule gathered in one window.
//!
//! Compiled and checked like an upload's templates ([`super::Templates`]), with the same
//! escaping rules (file names are data; HTML auto-escaped; the subject kept to one line), but
//! over a different set of variables:
//!
//! | variable | value |
//! | --- | --- |
//! | `digest.count` | how many files the window gathered |
//! | `digest.total_size` | their sizes added up, in bytes (integer) |
//! | `digest.total_size_human` | the same as `1.5 GiB` |
//! | `digest.total_size_exact` | the same as `1,610,612,736` |
//! | `digest.opened`, `digest.closed` | when the window opened and closed, rule's time zone |
//! | `files` | the files in arrival order, each with every `object.*` field of an upload |
//! | `rule.name`, `rule.time_zone` | as in an upload's email |

use jiff::Timestamp;
use jiff::tz::TimeZone;
use minijinja::context;
use minijinja::value::Value;

use super::{
    Defaults, Parts, RenderError, Rendered, TemplateError, format, local_time, object_value,
    rule_value, sample_event, sparse_sample_event,
};
use crate::event::ObjectCreated;

const DEFAULT_SUBJECT: &str = include_str!("templates/digest_subject.txt");
const DEFAULT_TEXT: &str = include_str!("templates/digest_text.txt");
const DEFAULT_HTML: &str = include_str!("templates/digest_html.html");

/// A rule's digest template sources as written in the config (`digest_subject`,
/// `digest_text`, `digest_html`); `None` uses the built-in default, an empty HTML source sends
/// no HTML part.
pub type DigestSources<'a> = super::TemplateSources<'a>;

/// What a digest's templates see.
#[derive(Debug, Clone, Copy)]
pub struct DigestContext<'a> {
    /// Name of the rule that gathered the files.
    pub rule: &'a str,
    /// Time zone for the times shown.
    pub time_zone: &'a TimeZone,
    /// When the window opened (its first upload).
    pub opened: Timestamp,
    /// When it closed.
    pub closed: Timestamp,
    /// The files, in the order they arrived; never empty in a sent digest.
    pub files: &'a [ObjectCreated],
}

/// A rule's three digest templates, compiled and checked; safe to share between tasks.
#[derive(Debug)]
pub struct DigestTemplates {
    parts: Parts,
}

impl DigestTemplates {
    /// Compiles the templates and trial-renders them on a sample digest whose two files have
    /// every optional field known and none, returning every problem found.
    pub fn compile(sources: DigestSources<'_>) -> Result<DigestTemplates, Vec<TemplateError>> {
        let defaults = Defaults {
            subject: DEFAULT_SUBJECT,
            text: DEFAULT_TEXT,
            html: DEFAULT_HTML,
        };
        let sample = [sample_event(), sparse_sample_event()];
        let values = digest_context(&sample_context(&sample, &TimeZone::UTC));
        let parts = Parts::compile(&sources, &defaults, &[values])?;
        Ok(DigestTemplates { parts })
    }

    /// Renders the subject, text and (if enabled) HTML of one digest.
    pub fn render(&self, ctx: &DigestContext<'_>) -> Result<Rendered, RenderError> {
        self.parts.render(&digest_context(ctx))
    }
}

/// A digest over `files` for trial renders, open for five minutes.
fn sample_context<'a>(files: &'a [ObjectCreated], time_zone: &'a TimeZone) -> DigestContext<'a> {
    let opened = files
        .first()
        .and_then(|file| file.event_time)
        .unwrap_or(Timestamp::UNIX_EPOCH);
    DigestContext {
        rule: "sample",
        time_zone,
        opened,
        closed: opened + jiff::SignedDuration::from_secs(300),
        files,
    }
}

/// Builds the `digest`, `files` and `rule` values.
fn digest_context(ctx: &DigestContext<'_>) -> Value {
    let total: u64 = ctx.files.iter().map(|file| file.size).sum();
    let files: Vec<Value> = ctx
        .files
        .iter()
        .map(|file| object_value(file, ctx.time_zone, None))
        .collect();
    let digest = context! {
        count => ctx.files.len(),
        total_size => total,
        total_size_human => format::size_human(total),
        total_size_exact => format::size_exact(total),
        opened => local_time(ctx.opened, ctx.time_zone),
        closed => local_time(ctx.closed, ctx.time_zone),
    };
    let rule = rule_value(ctx.rule, ctx.time_zone);
    context! { digest, files, rule }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::sample;
    use crate::render::TemplatePart;

    fn render(templates: &DigestTemplates, files: &[ObjectCreated]) -> Rendered {
        let utc = TimeZone::UTC;
        let ctx = sample_context(files, &utc);
        templates.render(&ctx).unwrap_or_else(|e| panic!("{e}"))
    }

    fn defaults() -> DigestTemplates {
        DigestTemplates::compile(DigestSources::default()).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn defaults_list_every_file_with_count_and_total() {
        let files = [sample("a/one.csv", 1000), sample("b/two.csv", 2048)];
        let rendered = render(&defaults(), &files);
        assert_eq!(rendered.subject, "2 new files for sample (3.0 KiB)");
        for expected in [
            "1. one.csv",
            "2. two.csv",
            "uploads/a/one.csv",
            "1000 B (1,000 bytes)",
            "2.0 KiB (2,048 bytes)",
            "3.0 KiB (3,048 bytes) in all",
        ] {
            assert!(
                rendered.text.contains(expected),
                "{expected}: {}",
                rendered.text
            );
        }
        let html = rendered.html.unwrap_or_default();
        assert!(html.contains("<table") && html.contains("one.csv") && html.contains("two.csv"));
    }

    #[test]
    fn one_file_reads_in_the_singular() {
        let rendered = render(&defaults(), &[sample("x.bin", 1)]);
        assert_eq!(rendered.subject, "1 new file for sample (1 B)");
    }

    #[test]
    fn hostile_names_stay_data() {
        let names = [
            "<script>alert(1)</script>.txt",
            "a\r\nBcc: x.txt",
            "{{ 7*7 }}.txt",
        ];
        let files: Vec<ObjectCreated> = names.iter().map(|n| sample(n, 5)).collect();
        let sources = DigestSources {
            subject: Some("{{ files[0].name }} {{ files[1].name }}"),
            ..DigestSources::default()
        };
        let templates = DigestTemplates::compile(sources).unwrap_or_else(|e| panic!("{e:?}"));
        let rendered = render(&templates, &files);

        let html = rendered.html.unwrap_or_default();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;.txt"),
            "{html}"
        );
        assert!(html.contains("{{ 7*7 }}.txt") && !html.contains("49"));
        assert!(rendered.text.contains("{{ 7*7 }}.txt"));
        assert!(rendered.text.contains("a\\r\\nBcc: x.txt"));
        assert!(!rendered.text.contains("a\r\nBcc"));
        assert!(
            !rendered.subject.contains(['\r', '\n']),
            "{}",
            rendered.subject
        );
    }

    #[test]
    fn mistakes_are_reported_at_compile_time() {
        let sources = DigestSources {
            subject: Some("{{ digest.cuont }}"),
            text: Some("{% for f in files %}"),
            html: Some(""),
        };
        let errors = DigestTemplates::compile(sources).err().unwrap_or_default();
        let parts: Vec<TemplatePart> = errors.iter().map(|e| e.part).collect();
        assert_eq!(
            parts,
            [TemplatePart::Subject, TemplatePart::Text],
            "{errors:?}"
        );
    }

    #[test]
    fn empty_html_sends_text_only() {
        let sources = DigestSources {
            html: Some(""),
            ..DigestSources::default()
        };
        let templates = DigestTemplates::compile(sources).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(render(&templates, &[sample("x", 1)]).html.is_none());
    }
}
