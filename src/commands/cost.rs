//! `herald cost`: prints what a month of Herald costs on a platform, line by line, from the
//! price table (built in, or `--prices FILE`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use herald::cost::{self, Arch, Fixed, Platform, PriceTable, PricesError, Usage};

use super::EXIT_CONFIG;

/// Arguments of `herald cost`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where Herald runs: aws-lambda-ses, aws-lambda-sqs-ses, gcp-cloud-run-sendgrid,
    /// azure-functions-event-grid, or all.
    #[arg(long, value_parser = parse_platforms, required_unless_present = "print_prices")]
    platform: Option<Platforms>,
    /// Uploads a month that match a rule.
    #[arg(long, required_unless_present = "print_prices")]
    uploads: Option<u64>,
    /// Recipients of each upload's email (to, cc and bcc together), at least 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    recipients: u64,
    /// Average object size, e.g. 2MiB; shown, but no line depends on it (Herald sends a link).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "1MiB")]
    avg_size: u64,
    /// Memory in MB: Lambda's and Cloud Run's configured memory, Functions' observed memory.
    /// Default: 128 (Lambda, Functions), 512 (Cloud Run).
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(128..=32768))]
    memory_mb: Option<u64>,
    /// Average run time per upload, email sent included (Lambda's REPORT lines show yours).
    #[arg(long, value_name = "MS", default_value_t = 100)]
    duration_ms: u64,
    /// Lambda's architecture: arm64 or x86_64.
    #[arg(long, value_parser = parse_arch, default_value = "arm64")]
    arch: Arch,
    /// Average messages per Lambda batch from SQS, 1 to 10 (low traffic gives nearer 1).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10))]
    batch: u64,
    /// Bytes logged to CloudWatch per Lambda invocation (START, END and REPORT lines).
    #[arg(long, value_name = "BYTES", default_value_t = 350)]
    log_bytes: u64,
    /// Size of one email as sent, for Azure Communication Services' data charge.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "20KiB")]
    email_size: u64,
    /// vCPUs of the Cloud Run service, e.g. 1 or 0.5.
    #[arg(long, default_value = "1")]
    cpu: Fixed,
    /// Price everything, ignoring free tiers.
    #[arg(long)]
    no_free_tier: bool,
    /// Price table to use instead of the built-in one (the whole table; no merge).
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,
    /// Print the estimate as JSON (decimals as strings).
    #[arg(long)]
    json: bool,
    /// Print the built-in price table, to start an override file from, and exit.
    #[arg(long, conflicts_with_all = ["platform", "uploads", "prices"])]
    print_prices: bool,
}

/// One platform or all of them.
#[derive(Debug, Clone)]
struct Platforms(Vec<Platform>);

/// Prints the estimate; exits 2 when the price table is unusable.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.print_prices {
        print!("{}", cost::prices::BUILT_IN);
        return Ok(ExitCode::SUCCESS);
    }
    let table = match load_table(args.prices.as_deref()) {
        Ok(table) => table,
        Err(err) => return Ok(report_table_error(&err)),
    };
    let usage = usage(&args);
    let platforms = args.platform.map(|p| p.0).unwrap_or_default();
    let mut estimates = Vec::new();
    for platform in platforms {
        let estimate = cost::estimate(platform, &usage, &table)
            .with_context(|| format!("cannot price {}", platform.name()))?;
        estimates.push(estimate);
    }
    if args.json {
        print_json(&estimates)?;
    } else {
        let texts: Vec<String> = estimates
            .iter()
            .map(|e| cost::report::render(e, &table))
            .collect();
        print!("{}", texts.join("\n"));
    }
    Ok(ExitCode::SUCCESS)
}

fn load_table(path: Option<&std::path::Path>) -> Result<PriceTable, PricesError> {
    match path {
        Some(path) => PriceTable::from_file(path),
        None => PriceTable::built_in(),
    }
}

/// Every problem on its own line, each starting with the file, like `herald check`.
fn report_table_error(err: &PricesError) -> ExitCode {
    if let PricesError::Invalid { origin, problems } = err {
        for problem in problems {
            eprintln!("error: {origin}: {problem}");
        }
    }
    match err {
        PricesError::Read { source, .. } => eprintln!("error: {err}: {source}"),
        _ => eprintln!("error: {err}"),
    }
    ExitCode::from(EXIT_CONFIG)
}

fn usage(args: &Args) -> Usage {
    Usage {
        uploads: args.uploads.unwrap_or_default(),
        recipients: args.recipients,
        object_bytes: args.avg_size,
        memory_mb: args.memory_mb,
        duration_ms: args.duration_ms,
        arch: args.arch,
        batch: args.batch,
        log_bytes: args.log_bytes,
        email_bytes: args.email_size,
        cpu: args.cpu,
        free_tier: !args.no_free_tier,
    }
}

fn print_json(estimates: &[cost::Estimate]) -> anyhow::Result<()> {
    let text = match estimates {
        [one] => serde_json::to_string_pretty(one),
        many => serde_json::to_string_pretty(many),
    }
    .context("cannot write the estimate as JSON")?;
    println!("{text}");
    Ok(())
}

fn parse_platforms(text: &str) -> Result<Platforms, String> {
    if text == "all" {
        return Ok(Platforms(Platform::ALL.to_vec()));
    }
    Platform::ALL
        .into_iter()
        .find(|p| p.name() == text)
        .map(|p| Platforms(vec![p]))
        .ok_or_else(|| {
            let names: Vec<&str> = Platform::ALL.iter().map(|p| p.name()).collect();
            format!("unknown platform; one of {}, or all", names.join(", "))
        })
}

fn parse_arch(text: &str) -> Result<Arch, String> {
    match text {
        "arm64" => Ok(Arch::Arm64),
        "x86_64" | "x86-64" => Ok(Arch::X86_64),
        _ => Err("one of arm64, x86_64".to_owned()),
    }
}

/// A size such as `2MiB`, `500KB`, `1.5 GiB` or `1234` (bytes); KB, MB, GB are powers of
/// 1,000 and KiB, MiB, GiB powers of 1,024.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit {other:?}; use B, KB, KiB, MB, MiB, GB or GiB"
            ));
        }
    };
    let number: Fixed = number.parse().map_err(|e| format!("{e}"))?;
    let bytes = number
        .checked_mul(Fixed::from_int(factor))
        .ok_or_else(|| "too large".to_owned())?;
    let whole = bytes.round(0).trimmed().replace(',', "");
    whole.parse().map_err(|_| "too large".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_decimal_and_binary_units() {
        assert_eq!(parse_size("2MiB"), Ok(2 * 1024 * 1024));
        assert_eq!(parse_size("1.5 KB"), Ok(1500));
        assert_eq!(parse_size("20KiB"), Ok(20480));
        assert_eq!(parse_size("1234"), Ok(1234));
        assert!(parse_size("2 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn platform_names_round_trip() {
        for platform in Platform::ALL {
            let parsed = parse_platforms(platform.name()).map(|p| p.0);
            assert_eq!(parsed, Ok(vec![platform]));
        }
        assert_eq!(parse_platforms("all").map(|p| p.0.len()), Ok(4));
        assert!(parse_platforms("heroku").is_err());
    }
}
