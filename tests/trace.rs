//! `herald events` and `herald trace` across processes: `herald invoke` writes a trace line per
//! upload, and a later command reads them back and explains them.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Two rules that miss `photos/Café Zürich 東京.jpg` in `acme-uploads`: one on two conditions
/// (bucket and prefix), one on its suffix only, so the second comes closest.
const RULES: &str = r#"
[[rule]]
name = "contracts"
bucket = "legal"
prefix = "contracts/"
to = ["legal@example.com"]

[[rule]]
name = "pdfs"
suffix = [".pdf", ".docx"]
to = ["docs@example.com"]
"#;

fn herald(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .current_dir(dir)
        .arg("--config")
        .arg(dir.join("herald.toml"))
        .args(args)
        .env_remove("HERALD_CONFIG")
        .env_remove("HERALD_CONFIG_TOML")
        .output()
        .expect("herald runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn explain(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    format!("stdout:\n{}\nstderr:\n{stderr}", stdout(output))
}

/// A config delivering to an outbox in `dir`, tracing into `dir/traces`.
fn setup() -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let text = format!(
        "[sender]\ntype = \"outbox\"\nfrom = \"h@example.com\"\ndir = \"outbox\"\n\
         [trace]\ndir = \"traces\"\n{RULES}"
    );
    std::fs::write(dir.path().join("herald.toml"), text)?;
    Ok(dir)
}

fn invoke(dir: &Path, fixture: &str) -> Result<(), String> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(fixture);
    let fixture = fixture.to_string_lossy();
    let output = herald(dir, &["invoke", &fixture]);
    output
        .status
        .success()
        .then_some(())
        .ok_or_else(|| explain(&output))
}

fn events(dir: &Path, args: &[&str]) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let output = herald(dir, &[&["events", "--json"], args].concat());
    if !output.status.success() {
        return Err(explain(&output).into());
    }
    Ok(serde_json::from_str(&stdout(&output))?)
}

#[test]
fn trace_names_the_closest_rule_and_what_it_wanted_for_an_unmatched_upload() -> TestResult {
    let dir = setup()?;
    invoke(dir.path(), "tests/fixtures/s3/key_utf8.json")?;
    let listed = events(dir.path(), &["--status", "unmatched"])?;
    let [upload] = listed.as_slice() else {
        return Err(format!("{listed:#?}").into());
    };
    assert_eq!(upload["event"]["key"], "photos/Café Zürich 東京.jpg");
    let id = upload["id"].as_str().ok_or("no id")?;

    let output = herald(dir.path(), &["trace", &id[..6]]);
    let text = stdout(&output);
    assert!(output.status.success(), "{}", explain(&output));
    for line in [
        format!("trace {id}: unmatched"),
        "  parsed as aws ObjectCreated:Put".to_owned(),
        "    contracts: bucket differs".to_owned(),
        "    pdfs: suffix differs".to_owned(),
        "  closest rule: pdfs".to_owned(),
        "    suffix differs: wants a key ending in one of \".pdf\", \".docx\"".to_owned(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing in:\n{text}"
        );
    }
    Ok(())
}

#[test]
fn events_filter_by_status_and_age_and_a_redelivery_stays_sent() -> TestResult {
    let dir = setup()?;
    invoke(dir.path(), "tests/fixtures/s3/put.json")?;
    invoke(dir.path(), "tests/fixtures/s3/key_utf8.json")?;
    invoke(dir.path(), "tests/fixtures/s3/put.json")?;

    assert_eq!(events(dir.path(), &[])?.len(), 2);
    let sent = events(dir.path(), &["--status", "sent", "--since", "1h"])?;
    let [upload] = sent.as_slice() else {
        return Err(format!("{sent:#?}").into());
    };
    assert_eq!(upload["event"]["key"], "invoices/2024/INV-0042.pdf");
    assert_eq!(upload["lines"].as_array().map(Vec::len), Some(2));
    assert!(events(dir.path(), &["--status", "failed"])?.is_empty());

    let table = stdout(&herald(dir.path(), &["events"]));
    assert!(table.starts_with("id "), "{table}");
    assert!(table.contains("unmatched"), "{table}");
    Ok(())
}

#[test]
fn unknown_ids_and_bad_filters_are_clear_errors() -> TestResult {
    let dir = setup()?;
    let unknown = herald(dir.path(), &["trace", "0000000000"]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("no upload with trace id \"0000000000\""),
        "{stderr}"
    );

    let bad = herald(dir.path(), &["events", "--status", "lost"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("\"lost\" is not a status: one of failed, retrying"),
        "{stderr}"
    );
    Ok(())
}
