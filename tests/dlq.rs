//! The local state file across processes: `herald invoke` remembers what it sent from one run
//! to the next, parks what a mail server refuses, and `herald dlq` lists, replays and drops it.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const PUT: &str = "tests/fixtures/s3/put.json";

fn herald(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("--config")
        .arg(config)
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

/// Writes a config with `sender` (TOML lines after `[sender]`), local dedupe and dead letters
/// in `dir`, and one rule for every upload.
fn config(dir: &Path, name: &str, sender: &str) -> std::io::Result<std::path::PathBuf> {
    let state = dir.join("state.redb");
    let text = format!(
        "[sender]\n{sender}\nfrom = \"Herald <herald@example.com>\"\n\
         [dedupe]\ntype = \"local\"\npath = {state:?}\n\
         [dead_letter]\npath = {state:?}\n\
         [[rule]]\nname = \"everything\"\nto = [\"team@example.com\"]\n"
    );
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

fn outbox(dir: &Path) -> std::io::Result<std::path::PathBuf> {
    let sender = format!("type = \"outbox\"\ndir = {:?}", dir.join("outbox"));
    config(dir, "outbox.toml", &sender)
}

fn counts(output: &Output) -> Value {
    let report: Value = serde_json::from_str(&stdout(output)).unwrap_or_else(|e| {
        panic!("{e}: {}", explain(output));
    });
    report["counts"].clone()
}

#[test]
fn a_second_invoke_of_the_same_event_is_a_duplicate() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = outbox(dir.path())?;

    let first = herald(&config, &["invoke", "--json", PUT]);
    assert_eq!(first.status.code(), Some(0), "{}", explain(&first));
    assert_eq!(counts(&first)["sent"], 1);

    let second = herald(&config, &["invoke", "--json", PUT]);
    assert_eq!(second.status.code(), Some(0), "{}", explain(&second));
    assert_eq!(
        (
            counts(&second)["sent"].clone(),
            counts(&second)["duplicate"].clone()
        ),
        (0.into(), 1.into())
    );
    assert_eq!(std::fs::read_dir(dir.path().join("outbox"))?.count(), 1);
    Ok(())
}

/// An SMTP server on loopback that refuses every message with a permanent 550.
fn refusing_smtp() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || converse(stream));
        }
    });
    Ok(addr)
}

fn converse(mut stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    stream.write_all(b"220 refusing.test ESMTP\r\n")?;
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 {
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 refusing.test\r\n",
            "MAIL" => b"550 5.7.1 sender refused for this test\r\n",
            "QUIT" => b"221 bye\r\n",
            _ => b"250 ok\r\n",
        };
        stream.write_all(reply)?;
        if verb == "QUIT" {
            break;
        }
        line.clear();
    }
    Ok(())
}

#[test]
fn a_refused_email_is_parked_then_replayed_with_a_working_sender() -> TestResult {
    let dir = tempfile::tempdir()?;
    let smtp = refusing_smtp()?;
    let refusing = config(
        dir.path(),
        "smtp.toml",
        &format!("type = \"smtp\"\nurl = \"smtp://{smtp}\"\ntls = \"none\""),
    )?;

    let invoke = herald(&refusing, &["invoke", "--json", PUT]);
    assert_eq!(invoke.status.code(), Some(1), "{}", explain(&invoke));
    let report: Value = serde_json::from_str(&stdout(&invoke))?;
    let id = report["entries"][0]["parked"]
        .as_str()
        .ok_or("parked id")?
        .to_owned();

    let list = herald(&refusing, &["dlq", "list"]);
    assert_eq!(list.status.code(), Some(0), "{}", explain(&list));
    let table = stdout(&list);
    assert!(
        table.contains(&id) && table.contains("everything"),
        "{table}"
    );
    assert!(
        table.contains("acme-uploads/invoices/2024/INV-0042.pdf"),
        "{table}"
    );
    assert!(table.contains("550"), "{table}");

    // Still refused: kept, with one more attempt.
    let again = herald(&refusing, &["dlq", "replay", &id]);
    assert_eq!(again.status.code(), Some(1), "{}", explain(&again));
    let table = stdout(&herald(&refusing, &["dlq", "list"]));
    let row = table.lines().find(|l| l.starts_with(&id)).ok_or("row")?;
    assert!(row.contains(" 2  "), "{row}");

    let working = outbox(dir.path())?;
    let replay = herald(&working, &["dlq", "replay", "--all"]);
    assert_eq!(replay.status.code(), Some(0), "{}", explain(&replay));
    assert!(
        stdout(&replay).contains("1 delivered, 0 still failing"),
        "{}",
        explain(&replay)
    );
    assert_eq!(std::fs::read_dir(dir.path().join("outbox"))?.count(), 1);
    let empty = herald(&working, &["dlq", "list"]);
    assert_eq!(stdout(&empty).trim(), "no parked notifications");

    // The replayed email is remembered: the platform redelivering the event sends nothing.
    let redelivery = herald(&working, &["invoke", "--json", PUT]);
    assert_eq!(
        counts(&redelivery)["duplicate"],
        1,
        "{}",
        explain(&redelivery)
    );
    Ok(())
}

#[test]
fn drop_removes_an_entry_and_unknown_ids_fail() -> TestResult {
    let dir = tempfile::tempdir()?;
    let smtp = refusing_smtp()?;
    let sender = format!("type = \"smtp\"\nurl = \"smtp://{smtp}\"\ntls = \"none\"");
    let refusing = config(dir.path(), "smtp.toml", &sender)?;
    let invoke = herald(&refusing, &["invoke", "--json", PUT]);
    let report: Value = serde_json::from_str(&stdout(&invoke))?;
    let id = report["entries"][0]["parked"]
        .as_str()
        .ok_or("parked id")?
        .to_owned();

    let dropped = herald(&refusing, &["dlq", "drop", &id]);
    assert_eq!(dropped.status.code(), Some(0), "{}", explain(&dropped));
    assert_eq!(
        herald(&refusing, &["dlq", "drop", &id]).status.code(),
        Some(1)
    );
    assert_eq!(
        herald(&refusing, &["dlq", "replay", &id]).status.code(),
        Some(1)
    );
    Ok(())
}

#[test]
fn dlq_without_a_dead_letter_section_is_a_config_problem() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("plain.toml");
    let text = format!(
        "[sender]\ntype = \"outbox\"\ndir = {:?}\nfrom = \"h@example.com\"\n\
         [[rule]]\nname = \"r\"\nto = [\"a@example.com\"]\n",
        dir.path().join("outbox")
    );
    std::fs::write(&path, text)?;
    let list = herald(&path, &["dlq", "list"]);
    assert_eq!(list.status.code(), Some(2), "{}", explain(&list));
    std::fs::write(&path, "colour = \"blue\"\n")?;
    assert_eq!(herald(&path, &["dlq", "list"]).status.code(), Some(2));
    Ok(())
}
