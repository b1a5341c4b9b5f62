//! The estimate as people read it: one row per billed line with how its quantity was worked
//! out, the total, and a footer naming every price's source and the date it was checked.

use std::fmt::Write as _;

use super::fixed::Fixed;
use super::model::{Arch, Estimate, Line, Platform};
use super::prices::{PriceTable, UNVERIFIED};

/// Width of the line's name column.
const NAME: usize = 44;

/// The whole estimate as text, ending in a newline.
pub fn render(estimate: &Estimate, table: &PriceTable) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", heading(estimate));
    let _ = writeln!(out, "inputs: {}", inputs(estimate));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<NAME$} {:>16} {:>16} {:>16}  {:<40} {:>10}",
        "line", "quantity", "free", "billable", "price", "cost"
    );
    for line in &estimate.lines {
        let _ = writeln!(out, "{}", row(line));
        let _ = writeln!(out, "    {}", line.basis);
    }
    let width = NAME + 3 * 17 + 2 + 40 + 11;
    let total = format!("${}", estimate.total.grouped(4));
    let _ = writeln!(out, "{:<w$}{total:>10}", "total a month", w = width - 10);
    let _ = writeln!(out);
    out.push_str(&footer(estimate, table));
    out
}

fn heading(estimate: &Estimate) -> String {
    let tier = if estimate.usage.free_tier {
        "free tier on"
    } else {
        "free tier off"
    };
    format!("herald cost: {} ({tier})", estimate.platform.name())
}

fn inputs(e: &Estimate) -> String {
    let u = &e.usage;
    let mut parts = vec![
        format!("{} uploads a month", group(u.uploads)),
        format!("{} recipients each", group(u.recipients)),
        format!("{} ms per upload", group(u.duration_ms)),
    ];
    match e.platform {
        Platform::AwsLambdaSes | Platform::AwsLambdaSqsSes => {
            let arch = match u.arch {
                Arch::Arm64 => "arm64",
                Arch::X86_64 => "x86_64",
            };
            parts.push(format!("{} MB {arch}", group(e.memory_mb)));
            parts.push(format!("{} log bytes per invocation", group(u.log_bytes)));
            if e.platform == Platform::AwsLambdaSqsSes {
                parts.push(format!("batches of {}", u.batch));
            }
        }
        Platform::GcpCloudRunSendgrid => {
            parts.push(format!(
                "{} vCPU, {} MiB",
                u.cpu.trimmed(),
                group(e.memory_mb)
            ));
        }
        Platform::AzureFunctionsEventGrid => {
            parts.push(format!("{} MB observed", group(e.memory_mb)));
            parts.push(format!("{} bytes per email", group(u.email_bytes)));
        }
    }
    parts.push(format!(
        "objects of {} bytes (no line depends on it: Herald sends a link, never the file)",
        group(u.object_bytes)
    ));
    parts.join(", ")
}

fn row(line: &Line) -> String {
    let name = format!("{} {}", line.service, line.item);
    let price = if line.per == 1 {
        format!("${} per {}", line.amount.trimmed(), line.unit)
    } else {
        format!(
            "${} per {} {}",
            line.amount.trimmed(),
            group(line.per),
            line.unit
        )
    };
    format!(
        "{name:<NAME$} {:>16} {:>16} {:>16}  {price:<40} {:>10}",
        line.quantity.round(6).trimmed(),
        line.free.round(6).trimmed(),
        line.billable.round(6).trimmed(),
        format!("${}", line.cost.grouped(4)),
    )
}

fn footer(estimate: &Estimate, table: &PriceTable) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "prices: {}", estimate.prices);
    for line in &estimate.lines {
        let (source, checked) = source_of(line, table);
        let checked = if checked == UNVERIFIED {
            checked
        } else {
            format!("checked {checked}")
        };
        let _ = writeln!(out, "  {}: {source} ({checked})", line.price);
    }
    if !estimate.unverified.is_empty() {
        let _ = writeln!(
            out,
            "unverified: {} (not confirmed on their source page: check them before relying \
             on this total)",
            estimate.unverified.join(", ")
        );
    }
    for note in &estimate.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

fn source_of(line: &Line, table: &PriceTable) -> (String, String) {
    if let Some(name) = line.price.strip_prefix("sendgrid ")
        && let Some(plan) = table.sendgrid_plans.iter().find(|p| p.name == name)
    {
        return (plan.source.clone(), plan.checked.clone());
    }
    let price = table.get(&line.price);
    (price.source, price.checked)
}

fn group(n: u64) -> String {
    Fixed::from_int(n).grouped(0)
}
