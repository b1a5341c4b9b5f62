//! `herald cost` as a user runs it, checked against the hand-worked examples in README.md:
//! the examples are read out of the README, so the two cannot drift apart.

use std::process::{Command, Output};

use herald::cost::Fixed;

const README: &str = include_str!("../README.md");

fn herald(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .output();
    output.unwrap_or_else(|e| panic!("herald does not run: {e}"))
}

/// One platform's worked example: the command and its rows (name, cost on, cost off).
struct Example {
    command: Vec<String>,
    rows: Vec<(String, Fixed, Fixed)>,
    total: (Fixed, Fixed),
}

fn money(cell: &str) -> Fixed {
    let digits = cell.trim().trim_start_matches('$').replace(',', "");
    digits
        .parse()
        .unwrap_or_else(|e| panic!("README cost {cell:?}: {e}"))
}

/// The examples under "## What it costs", one per `### ` heading.
fn examples() -> Vec<Example> {
    let start = README
        .find("## What it costs: `herald cost`")
        .unwrap_or_else(|| panic!("README has no cost section"));
    let section = &README[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let mut examples = Vec::new();
    for part in section[..end].split("\n### ").skip(1) {
        examples.push(example(part));
    }
    examples
}

fn example(part: &str) -> Example {
    let command = part
        .lines()
        .find_map(|l| l.strip_prefix("`herald cost ")?.strip_suffix('`'))
        .unwrap_or_else(|| panic!("no command in README example {part:.40}"));
    let mut rows = Vec::new();
    let mut total = None;
    for line in part.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if cells.len() != 4 || cells[0] == "line" || cells[0].starts_with("---") {
            continue;
        }
        let (on, off) = (money(cells[2]), money(cells[3]));
        if cells[0] == "total" {
            total = Some((on, off));
        } else {
            rows.push((cells[0].to_owned(), on, off));
        }
    }
    let mut args = vec!["cost".to_owned()];
    args.extend(command.split_whitespace().map(str::to_owned));
    Example {
        command: args,
        rows,
        total: total.unwrap_or_else(|| panic!("no total row in README example {part:.40}")),
    }
}

fn run_json(args: &[String], extra: &[&str]) -> serde_json::Value {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    all.push("--json");
    let output = herald(&all);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{all:?}: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{all:?}: {e}"))
}

fn fixed(value: &serde_json::Value) -> Fixed {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a string"));
    text.parse().unwrap_or_else(|e| panic!("{e}"))
}

/// Compares one run (free tier on or off) with the README's column for it.
fn check(example: &Example, free_tier: bool) {
    let extra: &[&str] = if free_tier { &[] } else { &["--no-free-tier"] };
    let estimate = run_json(&example.command, extra);
    let lines = estimate["lines"]
        .as_array()
        .unwrap_or_else(|| panic!("no lines in {estimate}"));
    let names: Vec<String> = lines
        .iter()
        .map(|l| {
            format!(
                "{} {}",
                l["service"].as_str().unwrap_or(""),
                l["item"].as_str().unwrap_or("")
            )
        })
        .collect();
    let readme: Vec<&String> = example.rows.iter().map(|r| &r.0).collect();
    assert_eq!(
        names.iter().collect::<Vec<_>>(),
        readme,
        "{:?}",
        example.command
    );
    for ((name, on, off), line) in example.rows.iter().zip(lines) {
        let want = if free_tier { on } else { off };
        assert_eq!(
            fixed(&line["cost"]),
            *want,
            "{name} (free tier {free_tier})"
        );
    }
    let want_total = if free_tier {
        example.total.0
    } else {
        example.total.1
    };
    assert_eq!(
        fixed(&estimate["total"]),
        want_total,
        "{:?} total",
        example.command
    );
}

#[test]
fn readme_has_an_example_for_every_platform() {
    let platforms: Vec<String> = examples()
        .iter()
        .filter_map(|e| {
            let at = e.command.iter().position(|a| a == "--platform")?;
            e.command.get(at + 1).cloned()
        })
        .collect();
    assert_eq!(
        platforms,
        [
            "aws-lambda-ses",
            "aws-lambda-sqs-ses",
            "gcp-cloud-run-sendgrid",
            "azure-functions-event-grid"
        ]
    );
}

#[test]
fn output_matches_the_readme_with_the_free_tier_on() {
    for example in examples() {
        check(&example, true);
    }
}

#[test]
fn output_matches_the_readme_with_the_free_tier_off() {
    for example in examples() {
        check(&example, false);
    }
}

#[test]
fn text_output_ends_each_table_with_the_readme_total_and_names_sources() {
    let example = &examples()[0];
    let args: Vec<&str> = example.command.iter().map(String::as_str).collect();
    let output = herald(&args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let total = stdout
        .lines()
        .find(|l| l.starts_with("total a month"))
        .unwrap_or_else(|| panic!("no total in {stdout}"));
    assert!(
        total.ends_with(&format!("${}", example.total.0.grouped(4))),
        "{total}"
    );
    assert!(
        stdout.contains(
            "lambda_requests: https://aws.amazon.com/lambda/pricing/ (checked 2026-12-04)"
        )
    );
    assert!(
        stdout.contains("unverified: s3_event_notifications, ses_emails"),
        "{stdout}"
    );
}

#[test]
fn printed_table_used_as_an_override_gives_the_same_estimate() {
    let printed = herald(&["cost", "--print-prices"]);
    assert!(printed.status.success());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("prices.toml");
    std::fs::write(&path, &printed.stdout).unwrap_or_else(|e| panic!("{e}"));

    let path_text = path.display().to_string();
    let base = [
        "cost",
        "--platform",
        "all",
        "--uploads",
        "250000",
        "--recipients",
        "2",
    ];
    let built_in = herald(&base);
    let mut with_file = base.to_vec();
    with_file.extend(["--prices", &path_text]);
    let overridden = herald(&with_file);
    assert!(
        overridden.status.success(),
        "{}",
        String::from_utf8_lossy(&overridden.stderr)
    );
    let relabel = String::from_utf8_lossy(&built_in.stdout).replace("built-in table", &path_text);
    assert_eq!(String::from_utf8_lossy(&overridden.stdout), relabel);
}

#[test]
fn changed_price_in_an_override_changes_the_line() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("prices.toml");
    let table =
        herald::cost::prices::BUILT_IN.replacen("amount = \"0.10\"", "amount = \"0.20\"", 1);
    std::fs::write(&path, table).unwrap_or_else(|e| panic!("{e}"));
    let path_text = path.display().to_string();
    let output = herald(&[
        "cost",
        "--platform",
        "aws-lambda-ses",
        "--uploads",
        "10000",
        "--no-free-tier",
        "--json",
        "--prices",
        &path_text,
    ]);
    let estimate: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}"));
    let ses = estimate["lines"]
        .as_array()
        .and_then(|lines| lines.iter().find(|l| l["price"] == "ses_emails"))
        .unwrap_or_else(|| panic!("no SES line in {estimate}"));
    // 10,000 emails at the overriding $0.20 per 1,000.
    assert_eq!(fixed(&ses["cost"]), "2".parse().unwrap_or_default());
}

#[test]
fn bad_override_file_names_the_file_and_every_field() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("mine.toml");
    let table = herald::cost::prices::BUILT_IN
        .replacen("amount = \"0.40\"", "amount = \"forty cents\"", 1)
        .replacen("[prices.acs_data]", "[prices.acs_bytes]", 1);
    std::fs::write(&path, table).unwrap_or_else(|e| panic!("{e}"));
    let path_text = path.display().to_string();
    let output = herald(&[
        "cost",
        "--platform",
        "all",
        "--uploads",
        "1",
        "--prices",
        &path_text,
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let file = format!("error: {path_text}: ");
    assert!(
        stderr.contains(&format!("{file}prices.acs_data: missing")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}prices.acs_bytes: unknown price")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{file}prices.sqs_requests.amount: \"forty cents\" is not a decimal"
        )),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn missing_override_file_is_a_clear_error() {
    let output = herald(&[
        "cost",
        "--platform",
        "aws-lambda-ses",
        "--uploads",
        "1",
        "--prices",
        "no/such/prices.toml",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("error: cannot read price table no/such/prices.toml: "),
        "{stderr}"
    );
}
