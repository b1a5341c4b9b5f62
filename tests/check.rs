//! `herald check` as a user runs it: every problem in one run, each naming file, rule and field.

use std::process::Command;

fn herald() -> Command {
    Command::new(env!("CARGO_BIN_EXE_herald"))
}

#[test]
fn broken_config_reports_all_four_problems_at_once() {
    let output = herald()
        .args(["check", "tests/fixtures/config/broken.toml"])
        .output()
        .expect("herald runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");

    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: tests/"))
        .collect();
    assert_eq!(problems.len(), 4, "{stderr}");
    let file = "error: tests/fixtures/config/broken.toml:";
    assert!(problems[0].starts_with(&format!("{file} [sender]: unknown variant `pigeon`")));
    assert!(problems[1].starts_with(&format!(
        "{file} rule \"contracts\" (#1): unknown field `recipients`"
    )));
    assert!(problems[2].starts_with(&format!(
        "{file} rule \"data\" (#2), to[0]: invalid email address \"data-team-at-example.com\""
    )));
    assert!(problems[3].starts_with(&format!("{file} rule \"security\" (#3): subject template")));
}

#[test]
fn example_config_passes() {
    let output = herald()
        .args(["check", "examples/herald.toml"])
        .output()
        .expect("herald runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("ok: 3 rule(s); sender: outbox in outbox"),
        "{stdout}"
    );
}

#[test]
fn missing_config_file_is_a_clear_error() {
    let output = herald()
        .args(["check", "tests/fixtures/config/does-not-exist.toml"])
        .output()
        .expect("herald runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("cannot read config tests/fixtures/config/does-not-exist.toml"));
}
