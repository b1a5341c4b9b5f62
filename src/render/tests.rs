//! Tests for template compilation, checking and rendering.

use jiff::tz::TimeZone;

use super::*;
use crate::event::tests::sample;

fn berlin() -> TimeZone {
    TimeZone::get("Europe/Berlin").expect("bundled tz database has Europe/Berlin")
}

fn render_with(templates: &Templates, event: &ObjectCreated) -> Rendered {
    let tz = berlin();
    let ctx = Context {
        event,
        rule: "contracts",
        time_zone: &tz,
        link: None,
    };
    templates.render(&ctx).expect("render")
}

fn compile(subject: &str, text: &str, html: &str) -> Result<Templates, Vec<TemplateError>> {
    Templates::compile(TemplateSources {
        subject: Some(subject),
        text: Some(text),
        html: Some(html),
    })
}

#[test]
fn templates_can_be_shared_between_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Templates>();
}

#[test]
fn defaults_show_the_upload() {
    let templates = Templates::compile(TemplateSources::default()).expect("defaults compile");
    let rendered = render_with(&templates, &sample_event());

    assert_eq!(rendered.subject, "New file in uploads: Q3 report.pdf");
    for expected in [
        "Q3 report.pdf",
        "reports/2024/Q3 report.pdf",
        "16.0 MiB (16,777,216 bytes)",
        "application/pdf",
        "2024-10-01 16:03:22 CEST",
        "AIDAJDPLRKLG7UEXAMPLE",
        "203.0.113.7",
        "\"contracts\"",
    ] {
        assert!(rendered.text.contains(expected), "text lacks {expected}");
    }
    let html = rendered.html.expect("default has html");
    assert!(html.contains("<table"));
    assert!(html.contains("16.0 MiB (16,777,216 bytes)"));
    assert!(html.contains("203.0.113.7"));
}

#[test]
fn defaults_leave_out_unknown_values() {
    let templates = Templates::compile(TemplateSources::default()).expect("defaults compile");
    let rendered = render_with(&templates, &sample("a.txt", 512));

    assert!(!rendered.text.contains("Uploader"));
    assert!(!rendered.text.contains("none"));
    assert!(rendered.text.contains("512 B (512 bytes)"));
    assert!(!rendered.text.contains("\n\n\n"), "{}", rendered.text);
    assert!(!rendered.html.expect("html").contains("Uploader"));
}

const HOSTILE_KEY: &str =
    "in/<script>alert(1)</script>/evil\r\nBcc: victim@example.com\r\n\r\n{{ 7*7 }}.txt";

#[test]
fn hostile_key_stays_data_in_defaults() {
    let templates = Templates::compile(TemplateSources::default()).expect("defaults compile");
    let rendered = render_with(&templates, &sample(HOSTILE_KEY, 1));

    assert_eq!(
        rendered.subject,
        r"New file in uploads: evil\r\nBcc: victim@example.com\r\n\r\n{{ 7*7 }}.txt"
    );
    assert!(
        rendered
            .text
            .contains(r"evil\r\nBcc: victim@example.com\r\n\r\n{{ 7*7 }}.txt")
    );
    assert!(
        !rendered.text.contains('\r'),
        "no bare CR from data in the body"
    );
    assert!(!rendered.text.contains("49"));

    let html = rendered.html.expect("html");
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
    assert!(html.contains("{{ 7*7 }}"));
    assert!(!html.contains("49"));
}

#[test]
fn hostile_key_in_a_subject_stays_on_one_line() {
    let templates = compile("Got {{ object.key }}", "{{ object.key }}", "").expect("compiles");
    let rendered = render_with(&templates, &sample(HOSTILE_KEY, 1));
    let shown =
        r"in/<script>alert(1)</script>/evil\r\nBcc: victim@example.com\r\n\r\n{{ 7*7 }}.txt";
    assert_eq!(rendered.subject, format!("Got {shown}"));
    assert_eq!(rendered.text, shown);
}

#[test]
fn subject_template_line_breaks_are_removed() {
    let templates = compile("a\n\t{{ object.bucket }}\r\n  b  ", "t", "").expect("compiles");
    assert_eq!(
        render_with(&templates, &sample("x", 1)).subject,
        "a uploads b"
    );
}

#[test]
fn empty_html_turns_the_html_part_off() {
    let templates = compile("s", "t", "").expect("compiles");
    assert_eq!(render_with(&templates, &sample("x", 1)).html, None);
}

#[test]
fn every_variable_is_available() {
    let text = "{{ object.name }}|{{ object.key }}|{{ object.folder }}|{{ object.bucket }}|\
                {{ object.size + 1 }}|{{ object.size_human }}|{{ object.size_exact }}|\
                {{ object.content_type }}|{{ object.etag }}|{{ object.version_id }}|\
                {{ object.uploader }}|{{ object.source_ip }}|{{ object.region }}|\
                {{ object.provider }}|{{ object.event_name }}|{{ object.time }}|\
                {{ object.time_utc }}|{{ rule.name }}|{{ rule.time_zone }}";
    let templates = compile("s", text, "").expect("compiles");
    let rendered = render_with(&templates, &sample_event());

    assert_eq!(
        rendered.text,
        "Q3 report.pdf|reports/2024/Q3 report.pdf|reports/2024/|uploads|16777217|16.0 MiB|\
         16,777,216|application/pdf|d41d8cd98f00b204e9800998ecf8427e|\
         3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY|AIDAJDPLRKLG7UEXAMPLE|203.0.113.7|eu-central-1|aws|\
         ObjectCreated:Put|2024-10-01 16:03:22 CEST|2024-10-01T14:03:22Z|contracts|Europe/Berlin"
    );
}

#[test]
fn missing_values_are_none_and_print_as_nothing() {
    let text = "[{{ object.uploader }}]{% if object.uploader %}yes{% else %}no{% endif %}\
                {% if object.time is none %} untimed{% endif %}";
    let templates = compile("s", text, "").expect("compiles");
    assert_eq!(
        render_with(&templates, &sample("x", 1)).text,
        "[]no untimed"
    );
}

#[test]
fn misspelt_variable_is_caught_at_compile_time() {
    let errors = compile("s", "Hello\n{{ object.nmae }}", "").expect_err("typo");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].part, TemplatePart::Text);
    assert_eq!(errors[0].line, Some(2));
    assert!(errors[0].message.contains("object.nmae"), "{}", errors[0]);
    assert!(errors[0].to_string().starts_with("text template, line 2: "));
}

#[test]
fn typo_in_a_branch_for_missing_values_is_caught() {
    let text = "{% if not object.uploader %}{{ object.uplodaer }}{% endif %}";
    let errors = compile("s", text, "").expect_err("typo");
    assert_eq!(errors[0].part, TemplatePart::Text);
}

#[test]
fn unknown_filter_is_caught() {
    let errors = compile("{{ object.name | shout }}", "t", "").expect_err("bad filter");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].part, TemplatePart::Subject);
}

#[test]
fn every_problem_is_reported_at_once() {
    let errors = compile("{{ object.name", "{{ rule.nme }}", "<p>\n\n{% if x %}").expect_err("bad");
    let parts: Vec<_> = errors.iter().map(|e| e.part).collect();
    assert_eq!(
        parts,
        [
            TemplatePart::Subject,
            TemplatePart::Text,
            TemplatePart::Html
        ]
    );
    let html = errors[2].to_string();
    assert!(html.starts_with("html template, line 3: "), "{html}");
}

#[test]
fn html_escaping_applies_to_the_html_part_only() {
    let templates =
        compile("{{ object.key }}", "{{ object.key }}", "{{ object.key }}").expect("compiles");
    let rendered = render_with(&templates, &sample("a&b<c>.txt", 1));
    assert_eq!(rendered.subject, "a&b<c>.txt");
    assert_eq!(rendered.text, "a&b<c>.txt");
    assert_eq!(rendered.html.as_deref(), Some("a&amp;b&lt;c&gt;.txt"));
}

#[test]
fn fixed_offset_zone_has_a_name() {
    let tz = TimeZone::fixed(jiff::tz::offset(2));
    assert_eq!(time_zone_name(&tz).as_deref(), Some("+02"));
    assert_eq!(time_zone_name(&TimeZone::UTC).as_deref(), Some("UTC"));
}
