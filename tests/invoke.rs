//! `herald invoke` on S3 payloads shaped like AWS's documentation, one fixture per scenario.
//!
//! Each test asserts the exact emails a payload produces, or its exact "ignored" outcome.

use std::process::{Command, Output};

use serde_json::Value;

const CONFIG: &str = "tests/fixtures/config/invoke.toml";

fn herald(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .env_remove("HERALD_CONFIG")
        .output()
        .expect("herald runs")
}

/// Runs a dry run on a fixture and returns the exit code and the JSON report.
fn dry_run(fixture: &str) -> (i32, Value) {
    let path = format!("tests/fixtures/{fixture}");
    let output = herald(&["--config", CONFIG, "invoke", "--dry-run", "--json", &path]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code().expect("exit code"), report)
}

/// The (rule, to, subject, text) of every rendered email, in order.
fn emails(report: &Value) -> Vec<(String, Vec<String>, String, String)> {
    let entries = report["entries"].as_array().expect("entries");
    let rendered = entries.iter().filter(|e| e["outcome"] == "rendered");
    rendered
        .map(|e| {
            let email = &e["email"];
            let to = email["to"].as_array().expect("to").iter();
            (
                email["rule"].as_str().expect("rule").to_owned(),
                to.map(|t| t.as_str().expect("address").to_owned())
                    .collect(),
                email["subject"].as_str().expect("subject").to_owned(),
                email["text"].as_str().expect("text").to_owned(),
            )
        })
        .collect()
}

fn one_email(fixture: &str) -> (String, Vec<String>, String, String) {
    let (code, report) = dry_run(fixture);
    assert_eq!(code, 0, "{report:#}");
    let mut emails = emails(&report);
    assert_eq!(emails.len(), 1, "{report:#}");
    emails.remove(0)
}

fn fallback(subject: &str, text: &str) -> (String, Vec<String>, String, String) {
    let to = vec!["uploads@example.com".to_owned()];
    ("everything-else".into(), to, subject.into(), text.into())
}

#[test]
fn put_renders_the_invoice_email() {
    let (rule, to, subject, text) = one_email("s3/put.json");
    assert_eq!(rule, "invoices");
    assert_eq!(to, ["Accounts <accounts@example.com>"]);
    assert_eq!(subject, "Invoice: INV-0042.pdf");
    assert_eq!(
        text,
        "invoices/2024/INV-0042.pdf | 48213 | ObjectCreated:Put | 2024-03-14 10:26:53 CET"
    );
}

#[test]
fn copy_renders_with_its_event_name() {
    let (rule, _, subject, text) = one_email("s3/copy.json");
    assert_eq!(
        (rule.as_str(), subject.as_str()),
        ("invoices", "Invoice: INV-0042.pdf")
    );
    assert!(text.starts_with("archive/2024/INV-0042.pdf | 48213 | ObjectCreated:Copy | "));
}

#[test]
fn multipart_upload_matches_the_size_rule() {
    let (rule, to, subject, text) = one_email("s3/multipart.json");
    assert_eq!(
        (rule.as_str(), to),
        ("large", vec!["ops@example.com".to_owned()])
    );
    assert_eq!(subject, "Large upload: db-2024-03-14.tar.gz (150.0 MiB)");
    assert_eq!(
        text,
        "backups/db-2024-03-14.tar.gz | 157286400 | 157,286,400"
    );
}

#[test]
fn five_gib_object_keeps_its_exact_size() {
    let (rule, _, subject, text) = one_email("s3/size_5gib.json");
    assert_eq!(rule, "large");
    assert_eq!(subject, "Large upload: keynote-4k.mov (5.0 GiB)");
    assert_eq!(
        text,
        "video/raw/keynote-4k.mov | 5368709120 | 5,368,709,120"
    );
}

#[test]
fn multi_record_payload_sends_one_email_per_record_in_order() {
    let (code, report) = dry_run("s3/multi_record.json");
    assert_eq!(code, 0);
    assert_eq!(
        emails(&report),
        [
            fallback("New file: a.csv", "acme-uploads/inbox/a.csv (1200 bytes)"),
            fallback("New file: b.csv", "acme-uploads/inbox/b.csv (2400 bytes)"),
            fallback("New file: c.csv", "acme-uploads/inbox/c.csv (3600 bytes)"),
        ]
    );
}

#[test]
fn form_encoded_keys_are_decoded_once() {
    let cases = [
        (
            "s3/key_plus.json",
            "Q3 report (final).pdf",
            "reports/Q3 report (final).pdf",
            20480,
        ),
        ("s3/key_encoded_plus.json", "a+b.txt", "a+b.txt", 3),
        (
            "s3/key_colon.json",
            "2024-01-01T10:00:00.log",
            "logs/2024-01-01T10:00:00.log",
            5120,
        ),
        ("s3/key_slash.json", "file.txt", "folder/sub/file.txt", 11),
        (
            "s3/key_utf8.json",
            "Café Zürich 東京.jpg",
            "photos/Café Zürich 東京.jpg",
            2097152,
        ),
    ];
    for (fixture, name, key, size) in cases {
        let bucket = "acme-uploads";
        let expected = fallback(
            &format!("New file: {name}"),
            &format!("{bucket}/{key} ({size} bytes)"),
        );
        assert_eq!(one_email(fixture), expected, "{fixture}");
    }
}

#[test]
fn minio_webhook_goes_through_the_same_source() {
    let email = one_email("minio/put.json");
    let expected = fallback(
        "New file: holiday photo.jpg",
        "media-inbox/2024/holiday photo.jpg (3145728 bytes)",
    );
    assert_eq!(email, expected);
}

fn only_outcome(fixture: &str) -> Value {
    let (code, report) = dry_run(fixture);
    assert_eq!(code, 0, "{report:#}");
    let entries = report["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{report:#}");
    entries[0].clone()
}

#[test]
fn test_event_is_acknowledged_without_email() {
    let entry = only_outcome("s3/test_event.json");
    assert_eq!(entry["outcome"], "test");
    assert_eq!(entry["kind"], "s3:TestEvent");
}

#[test]
fn delete_event_is_ignored() {
    let entry = only_outcome("s3/delete.json");
    assert_eq!(entry["outcome"], "ignored");
    assert_eq!(entry["event_name"], "ObjectRemoved:Delete");
}

#[test]
fn folder_placeholder_is_skipped() {
    let entry = only_outcome("s3/folder_placeholder.json");
    assert_eq!(entry["outcome"], "skipped");
    assert_eq!(entry["reason"], "folder_placeholder");
    assert_eq!(entry["object"]["key"], "photos/2024/");
}

#[test]
fn bad_record_fails_alone_and_sets_the_exit_code() {
    let (code, report) = dry_run("s3/mixed_bad_record.json");
    assert_eq!(code, 1);
    let entries = report["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["outcome"], "rendered");
    assert_eq!(entries[1]["outcome"], "failed");
    assert_eq!(entries[1]["record"], 1);
    assert!(
        entries[1]["error"]
            .as_str()
            .expect("error")
            .contains("record 1")
    );
}

#[test]
fn unknown_payload_is_a_clear_error() {
    let output = herald(&["--config", CONFIG, "invoke", "--dry-run", "Cargo.toml"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("payload is not a known storage event format: not valid JSON"));
}

#[test]
fn message_id_is_the_same_for_a_redelivered_event() {
    let id = |report: Value| report["entries"][0]["email"]["message_id"].clone();
    let first = id(dry_run("s3/put.json").1);
    assert_eq!(first, id(dry_run("s3/put.json").1));
    let first = first.as_str().expect("message id");
    assert!(
        first.starts_with("herald.") && first.ends_with("@example.com"),
        "{first}"
    );
}

/// Sends through the outbox and parses the `.eml` the way a mail client would.
#[test]
fn hostile_file_name_stays_data() {
    let outbox = tempfile::tempdir().expect("temp dir");
    let config = std::fs::read_to_string(CONFIG).expect("config");
    let dir = outbox.path().join("mail");
    let config = config.replace("dir = \"outbox\"", &format!("dir = {:?}", dir.display()));
    let config_path = outbox.path().join("herald.toml");
    std::fs::write(&config_path, config).expect("write config");

    let config_arg = config_path.to_str().expect("utf-8 path");
    let output = herald(&[
        "-c",
        config_arg,
        "invoke",
        "tests/fixtures/s3/key_hostile.json",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let files: Vec<_> = std::fs::read_dir(&dir).expect("outbox").collect();
    assert_eq!(files.len(), 1);
    let raw = std::fs::read(files[0].as_ref().expect("entry").path()).expect("eml");
    assert_hostile_name_is_inert(&raw);
}

fn assert_hostile_name_is_inert(raw: &[u8]) {
    let header_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let headers = String::from_utf8_lossy(&raw[..header_end]);
    let names: Vec<&str> = headers
        .lines()
        .filter(|l| !l.starts_with([' ', '\t']))
        .filter_map(|l| l.split(':').next())
        .collect();
    assert!(
        !names.iter().any(|n| n.eq_ignore_ascii_case("bcc")),
        "{headers}"
    );

    let message = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("parses");
    let subject = message.subject().expect("subject");
    assert!(!subject.contains(['\r', '\n']), "{subject:?}");
    assert!(subject.contains("Bcc: attacker@example.com"), "{subject:?}");
    let text = message.body_text(0).expect("text part");
    assert!(text.contains("{{ 7*7 }}") && !text.contains("49"), "{text}");
    let html = message.body_html(0).expect("html part");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;img"), "{html}");
    assert!(
        !html.contains("<script") && !html.contains("<img"),
        "{html}"
    );
    assert!(html.contains("{{ 7*7 }}"), "{html}");
}

#[test]
fn payload_on_standard_input_works() {
    let payload = std::fs::read("tests/fixtures/s3/put.json").expect("fixture");
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--config", CONFIG, "invoke", "--dry-run", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("herald runs");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&payload)
        .expect("write");
    let output = child.wait_with_output().expect("herald ends");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(
        stdout.contains("Subject: Invoice: INV-0042.pdf"),
        "{stdout}"
    );
}
