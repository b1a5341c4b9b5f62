//! What each platform bills for one month of Herald's work, line by line.
//!
//! The model follows what Herald does per upload: one event in, one invocation (or one
//! request), one email per matching rule (one rule is assumed) addressed to every recipient,
//! and with a `[dedupe]` store two writes per email: the claim before sending and the mark
//! after. Providers bill email per recipient, so emails billed = uploads × recipients. Herald
//! puts a link in the email, never the file, so the object's size changes no line.

use serde::Serialize;

use super::fixed::{Fixed, group_digits};
use super::prices::{PriceTable, TableOrigin};

/// Bytes in a GiB, the unit CloudWatch Logs bills by.
const GIB: u128 = 1 << 30;
/// Bytes in a TiB, the unit Pub/Sub bills by.
const TIB: u128 = 1 << 40;
/// Bytes in a MiB, the unit Azure Communication Services bills data by.
const MIB: u128 = 1 << 20;
/// Size of the Cloud Storage "finalized" event Eventarc carries through Pub/Sub: the object's
/// metadata as JSON plus CloudEvents attributes, about 1.5 KB whatever the object's size.
pub const GCS_EVENT_BYTES: u64 = 1_500;
/// Pub/Sub bills at least this much per publish or push request.
const PUBSUB_MIN_BYTES: u64 = 1_000;
/// Empty long polls a month from Lambda's SQS pollers on an idle queue: five pollers, each
/// waiting 20 s per receive, for a 30-day month (5 × 86,400 × 30 / 20). An upper bound: busy
/// pollers return messages instead.
pub const SQS_IDLE_POLLS: u64 = 648_000;

/// Where Herald runs and how it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Platform {
    /// S3 invokes the Lambda function directly; SES sends.
    AwsLambdaSes,
    /// S3 sends to an SQS queue the function reads in batches; SES sends.
    AwsLambdaSqsSes,
    /// Eventarc pushes Cloud Storage events to Cloud Run; SendGrid sends.
    GcpCloudRunSendgrid,
    /// Event Grid pushes Blob Storage events to Azure Functions; Azure Communication
    /// Services Email sends.
    AzureFunctionsEventGrid,
}

impl Platform {
    /// Every platform, in the order `--platform all` prints them.
    pub const ALL: [Platform; 4] = [
        Platform::AwsLambdaSes,
        Platform::AwsLambdaSqsSes,
        Platform::GcpCloudRunSendgrid,
        Platform::AzureFunctionsEventGrid,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Platform::AwsLambdaSes => "aws-lambda-ses",
            Platform::AwsLambdaSqsSes => "aws-lambda-sqs-ses",
            Platform::GcpCloudRunSendgrid => "gcp-cloud-run-sendgrid",
            Platform::AzureFunctionsEventGrid => "azure-functions-event-grid",
        }
    }

    /// The memory the platform's line is computed with when none is given, in MB (MiB).
    pub fn default_memory_mb(self) -> u64 {
        match self {
            // The shipped CloudFormation template's MemorySize.
            Platform::AwsLambdaSes | Platform::AwsLambdaSqsSes => 128,
            // Cloud Run's default memory limit.
            Platform::GcpCloudRunSendgrid => 512,
            // Functions bills observed memory in 128 MB steps; Herald stays inside the first.
            Platform::AzureFunctionsEventGrid => 128,
        }
    }
}

/// Lambda's instruction set, which sets the GB-second price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// Graviton.
    Arm64,
    /// Intel or AMD.
    X86_64,
}

/// A month of Herald's work and how it runs.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// Uploads a month that match a rule.
    pub uploads: u64,
    /// Recipients of each upload's email (to, cc and bcc together).
    pub recipients: u64,
    /// Average size of an uploaded object; no line depends on it (Herald sends a link).
    pub object_bytes: u64,
    /// Configured memory (Lambda, Cloud Run) or observed memory (Functions), in MB (MiB);
    /// `None` takes [`Platform::default_memory_mb`].
    pub memory_mb: Option<u64>,
    /// Average run time per upload in milliseconds, email send included.
    pub duration_ms: u64,
    /// Lambda's architecture.
    pub arch: Arch,
    /// Average messages per Lambda batch from SQS (1 to 10).
    pub batch: u64,
    /// Log bytes per Lambda invocation that reach CloudWatch Logs.
    pub log_bytes: u64,
    /// Size of one email as sent, for services that bill data per message.
    pub email_bytes: u64,
    /// vCPUs of the Cloud Run service.
    pub cpu: Fixed,
    /// Whether free tiers are subtracted.
    pub free_tier: bool,
}

/// One billed line: what was counted, what was free, what it costs.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// The provider's service, e.g. "AWS Lambda".
    pub service: String,
    /// What is counted, e.g. "requests".
    pub item: String,
    /// How the quantity was worked out, in words and numbers.
    pub basis: String,
    /// Units used this month.
    pub quantity: Fixed,
    /// The unit.
    pub unit: String,
    /// Units the free tier covered (zero with it off).
    pub free: Fixed,
    /// Units paid for.
    pub billable: Fixed,
    /// Price of `per` units.
    pub amount: Fixed,
    /// Units `amount` buys.
    pub per: u64,
    /// `billable × amount / per`, rounded half up to four decimals.
    pub cost: Fixed,
    /// The price's key in the table.
    pub price: String,
}

/// A month's estimate for one platform.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// The platform.
    pub platform: Platform,
    /// The inputs, memory resolved.
    pub usage: Usage,
    /// Memory the lines used, in MB (MiB).
    pub memory_mb: u64,
    /// Every billed line.
    pub lines: Vec<Line>,
    /// The sum of the lines' (rounded) costs.
    pub total: Fixed,
    /// Currency of every amount.
    pub currency: String,
    /// Prices whose `checked` is "unverified" among those used.
    pub unverified: Vec<String>,
    /// Where the table came from and when it was reviewed.
    pub prices: String,
    /// What the estimate leaves out or assumes.
    pub notes: Vec<String>,
}

/// An estimate that cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// The numbers do not fit the arithmetic.
    #[error("{what} is too large to price")]
    TooLarge {
        /// Which quantity overflowed.
        what: String,
    },
    /// SendGrid sells no listed plan this large.
    #[error(
        "{emails} emails a month is more than the largest SendGrid plan in the price table \
         ({largest}); SendGrid prices that by quote"
    )]
    NoSendGridPlan {
        /// Emails a month needed.
        emails: u64,
        /// The largest plan listed.
        largest: String,
    },
    /// An input is outside what the platform allows.
    #[error("{0}")]
    Input(String),
}

/// Prices a month of `usage` on `platform` with `table`.
pub fn estimate(
    platform: Platform,
    usage: &Usage,
    table: &PriceTable,
) -> Result<Estimate, CostError> {
    check_inputs(usage)?;
    let memory_mb = usage.memory_mb.unwrap_or(platform.default_memory_mb());
    let ctx = Ctx {
        usage,
        table,
        memory_mb,
    };
    let (lines, notes) = match platform {
        Platform::AwsLambdaSes => (ctx.aws(false)?, aws_notes(false)),
        Platform::AwsLambdaSqsSes => (ctx.aws(true)?, aws_notes(true)),
        Platform::GcpCloudRunSendgrid => (ctx.gcp()?, gcp_notes()),
        Platform::AzureFunctionsEventGrid => (ctx.azure()?, azure_notes()),
    };
    let total = lines.iter().fold(Fixed::ZERO, |sum, l| sum.plus(l.cost));
    let mut unverified: Vec<String> = lines
        .iter()
        .filter(|l| table.unverified().contains(&l.price))
        .map(|l| l.price.clone())
        .collect();
    unverified.dedup();
    Ok(Estimate {
        platform,
        usage: usage.clone(),
        memory_mb,
        lines,
        total,
        currency: table.about.currency.clone(),
        unverified,
        prices: describe_table(table),
        notes,
    })
}

fn describe_table(table: &PriceTable) -> String {
    let origin = match &table.origin {
        TableOrigin::BuiltIn => "built-in table".to_owned(),
        TableOrigin::File(path) => path.display().to_string(),
    };
    format!(
        "{origin}, reviewed {}, {} ({})",
        table.about.reviewed, table.about.currency, table.about.regions
    )
}

fn check_inputs(usage: &Usage) -> Result<(), CostError> {
    if !(1..=10).contains(&usage.batch) {
        return Err(CostError::Input(format!(
            "--batch {} is outside 1 to 10, the SQS batch sizes Lambda reads",
            usage.batch
        )));
    }
    if usage.uploads > 1_000_000_000_000 || usage.recipients > 1_000_000 {
        return Err(CostError::TooLarge {
            what: "the number of uploads or recipients".to_owned(),
        });
    }
    Ok(())
}

/// The inputs every line builder reads.
struct Ctx<'a> {
    usage: &'a Usage,
    table: &'a PriceTable,
    memory_mb: u64,
}

impl Ctx<'_> {
    /// Both AWS platforms: they differ only in the queue and in invocations per upload.
    fn aws(&self, queue: bool) -> Result<Vec<Line>, CostError> {
        let u = self.usage;
        let invocations = if queue {
            u.uploads.div_ceil(u.batch)
        } else {
            u.uploads
        };
        let mut lines = vec![self.line(
            "s3_event_notifications",
            "event notifications",
            int(u.uploads),
            format!("{} uploads, one notification each", group(u.uploads)),
        )?];
        if queue {
            lines.push(self.sqs_requests(invocations)?);
        }
        lines.push(self.line(
            "lambda_requests",
            "requests",
            int(invocations),
            if queue {
                format!(
                    "{} uploads in batches of {} = {} invocations",
                    group(u.uploads),
                    u.batch,
                    group(invocations)
                )
            } else {
                format!("one invocation per notification: {}", group(u.uploads))
            },
        )?);
        lines.push(self.lambda_duration()?);
        lines.push(self.dedupe_writes()?);
        lines.push(self.line(
            "ses_emails",
            "emails",
            int(self.emails()?),
            self.emails_basis()?,
        )?);
        let log_bytes = u128::from(invocations) * u128::from(u.log_bytes);
        lines.push(self.line(
            "cloudwatch_logs_ingestion",
            "log ingestion",
            Fixed::ratio(log_bytes, GIB),
            format!(
                "{} invocations × {} bytes = {} bytes / 2^30",
                group(invocations),
                group(u.log_bytes),
                group_digits(log_bytes)
            ),
        )?);
        Ok(lines)
    }

    fn sqs_requests(&self, batches: u64) -> Result<Line, CostError> {
        let u = self.usage;
        let total = u.uploads + 2 * batches + SQS_IDLE_POLLS;
        self.line(
            "sqs_requests",
            "requests",
            int(total),
            format!(
                "{} sends (S3) + {} receives + {} batch deletes + {} empty long polls",
                group(u.uploads),
                group(batches),
                group(batches),
                group(SQS_IDLE_POLLS)
            ),
        )
    }

    fn lambda_duration(&self) -> Result<Line, CostError> {
        let u = self.usage;
        let key = match u.arch {
            Arch::Arm64 => "lambda_gb_seconds_arm64",
            Arch::X86_64 => "lambda_gb_seconds_x86_64",
        };
        let product =
            u128::from(u.uploads) * u128::from(self.memory_mb) * u128::from(u.duration_ms);
        self.line(
            key,
            "duration",
            Fixed::ratio(product, 1_024_000),
            format!(
                "{} uploads × {} MB / 1,024 × {} ms / 1,000",
                group(u.uploads),
                group(self.memory_mb),
                group(u.duration_ms)
            ),
        )
    }

    fn dedupe_writes(&self) -> Result<Line, CostError> {
        let u = self.usage;
        self.line(
            "dynamodb_write_requests",
            "dedupe writes",
            int(2 * u.uploads),
            format!("{} emails × 2 (claim, then mark sent)", group(u.uploads)),
        )
    }

    fn gcp(&self) -> Result<Vec<Line>, CostError> {
        let u = self.usage;
        let billed_ms = u.duration_ms.div_ceil(100).max(1) * 100;
        let event_bytes = GCS_EVENT_BYTES.max(PUBSUB_MIN_BYTES);
        let pubsub_bytes = u128::from(u.uploads) * 2 * u128::from(event_bytes);
        let seconds = Fixed::ratio(u128::from(u.uploads) * u128::from(billed_ms), 1_000);
        let vcpu = seconds
            .checked_mul(u.cpu)
            .ok_or_else(|| too_large("vCPU-seconds"))?;
        let gib = Fixed::ratio(
            u128::from(u.uploads) * u128::from(billed_ms) * u128::from(self.memory_mb),
            1_024_000,
        );
        Ok(vec![
            self.line(
                "eventarc_google_events",
                "Cloud Storage events",
                int(u.uploads),
                format!("{} uploads, one finalized event each", group(u.uploads)),
            )?,
            self.line(
                "pubsub_throughput",
                "event transport",
                Fixed::ratio(pubsub_bytes, TIB),
                format!(
                    "{} events × 2 (publish, push) × {} bytes = {} bytes / 2^40",
                    group(u.uploads),
                    group(event_bytes),
                    group_digits(pubsub_bytes)
                ),
            )?,
            self.line(
                "cloud_run_requests",
                "requests",
                int(u.uploads),
                format!("one push request per event: {}", group(u.uploads)),
            )?,
            self.line(
                "cloud_run_vcpu_seconds",
                "CPU",
                vcpu,
                format!(
                    "{} requests × {} ms (rounded up to 100 ms) / 1,000 × {} vCPU",
                    group(u.uploads),
                    group(billed_ms),
                    u.cpu.trimmed()
                ),
            )?,
            self.line(
                "cloud_run_gib_seconds",
                "memory",
                gib,
                format!(
                    "{} requests × {} ms / 1,000 × {} MiB / 1,024",
                    group(u.uploads),
                    group(billed_ms),
                    group(self.memory_mb)
                ),
            )?,
            self.sendgrid_plan()?,
        ])
    }

    fn sendgrid_plan(&self) -> Result<Line, CostError> {
        let emails = self.emails()?;
        let plans = &self.table.sendgrid_plans;
        let Some(plan) = plans.iter().find(|p| p.emails >= emails) else {
            let largest = plans
                .iter()
                .max_by_key(|p| p.emails)
                .map_or_else(String::new, |p| {
                    format!("{}, {} emails", p.name, group(p.emails))
                });
            return Err(CostError::NoSendGridPlan { emails, largest });
        };
        Ok(Line {
            service: "Twilio SendGrid".to_owned(),
            item: format!("{} plan", plan.name),
            basis: format!(
                "{}; the cheapest plan with at least that many emails",
                self.emails_basis()?
            ),
            quantity: Fixed::from_int(1),
            unit: "month".to_owned(),
            free: Fixed::ZERO,
            billable: Fixed::from_int(1),
            amount: plan.amount,
            per: 1,
            cost: plan.amount.round(4),
            price: format!("sendgrid {}", plan.name),
        })
    }

    fn azure(&self) -> Result<Vec<Line>, CostError> {
        let u = self.usage;
        let billed_ms = u.duration_ms.max(100);
        let billed_mb = self.memory_mb.div_ceil(128).max(1) * 128;
        let gb_s = Fixed::ratio(
            u128::from(u.uploads) * u128::from(billed_mb) * u128::from(billed_ms),
            1_024_000,
        );
        let emails = self.emails()?;
        let data = u128::from(emails) * u128::from(u.email_bytes);
        Ok(vec![
            self.line(
                "event_grid_operations",
                "operations",
                int(2 * u.uploads),
                format!("{} events × 2 (publish, delivery)", group(u.uploads)),
            )?,
            self.line(
                "functions_executions",
                "executions",
                int(u.uploads),
                format!("one execution per event: {}", group(u.uploads)),
            )?,
            self.line(
                "functions_gb_seconds",
                "execution time",
                gb_s,
                format!(
                    "{} executions × {} MB (128 MB steps) / 1,024 × {} ms (at least 100) / 1,000",
                    group(u.uploads),
                    group(billed_mb),
                    group(billed_ms)
                ),
            )?,
            self.line("acs_emails", "emails", int(emails), self.emails_basis()?)?,
            self.line(
                "acs_data",
                "email data",
                Fixed::ratio(data, MIB),
                format!(
                    "{} emails × {} bytes = {} bytes / 2^20",
                    group(emails),
                    group(u.email_bytes),
                    group_digits(data)
                ),
            )?,
        ])
    }

    /// Emails billed: one per recipient of each upload's email.
    fn emails(&self) -> Result<u64, CostError> {
        self.usage
            .uploads
            .checked_mul(self.usage.recipients)
            .ok_or_else(|| too_large("uploads × recipients"))
    }

    fn emails_basis(&self) -> Result<String, CostError> {
        let u = self.usage;
        Ok(format!(
            "{} uploads × {} recipients = {} emails",
            group(u.uploads),
            group(u.recipients),
            group(self.emails()?)
        ))
    }

    /// A line priced from the table, with the free tier applied when it is on.
    fn line(
        &self,
        key: &str,
        item: &str,
        quantity: Fixed,
        basis: String,
    ) -> Result<Line, CostError> {
        let price = self.table.get(key);
        let free = if self.usage.free_tier {
            price.free.min(quantity)
        } else {
            Fixed::ZERO
        };
        let billable = quantity.sub_floor(free);
        let cost = billable
            .checked_mul(price.amount)
            .ok_or_else(|| too_large(item))?
            .div_int(price.per)
            .round(4);
        Ok(Line {
            service: price.service.clone(),
            item: item.to_owned(),
            basis,
            quantity,
            unit: price.unit.clone(),
            free,
            billable,
            amount: price.amount,
            per: price.per,
            cost,
            price: key.to_owned(),
        })
    }
}

fn too_large(what: &str) -> CostError {
    CostError::TooLarge {
        what: what.to_owned(),
    }
}

fn int(n: u64) -> Fixed {
    Fixed::from_int(n)
}

fn group(n: u64) -> String {
    Fixed::from_int(n).grouped(0)
}

fn aws_notes(queue: bool) -> Vec<String> {
    let mut notes = vec![
        "free tiers are per account: other workloads in the account use them too".to_owned(),
        "SES's 3,000 free emails last only the first 12 months".to_owned(),
        "logs: Lambda's START, END and REPORT lines; Herald logs nothing per upload at INFO"
            .to_owned(),
        "not counted: retries after failures, the dead-letter queue, data transfer".to_owned(),
    ];
    if queue {
        notes.push(format!(
            "SQS empty long polls assume an idle queue all month ({} = 5 pollers × 20 s); \
             at low traffic batches hold nearer 1 message than 10",
            group(SQS_IDLE_POLLS)
        ));
    }
    notes
}

fn gcp_notes() -> Vec<String> {
    vec![
        "Cloud Run is billed as if each request ran alone; concurrent requests share \
         instance time and cost less"
            .to_owned(),
        "SendGrid is a monthly plan, the same with the free tier on or off (no free plan \
         since March 2025); overage on a smaller plan is not modelled"
            .to_owned(),
        "not counted: Cloud Logging (first 50 GiB free), retries, egress".to_owned(),
    ]
}

fn azure_notes() -> Vec<String> {
    vec![
        "email through Azure Communication Services Email, which has no free tier".to_owned(),
        "Data Lake Storage accounts publish two events per upload (CreateFile, \
         FlushWithClose): double the Event Grid line"
            .to_owned(),
        "not counted: the function app's storage account, Application Insights, retries".to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(uploads: u64, recipients: u64, free_tier: bool) -> Usage {
        Usage {
            uploads,
            recipients,
            object_bytes: 2 << 20,
            memory_mb: None,
            duration_ms: 100,
            arch: Arch::Arm64,
            batch: 10,
            log_bytes: 350,
            email_bytes: 20 << 10,
            cpu: Fixed::from_int(1),
            free_tier,
        }
    }

    fn table() -> PriceTable {
        PriceTable::built_in().unwrap_or_else(|e| panic!("{e}"))
    }

    fn cost_of(estimate: &Estimate, key: &str) -> String {
        let line = estimate.lines.iter().find(|l| l.price == key);
        line.map_or_else(|| format!("no {key}"), |l| l.cost.grouped(4))
    }

    fn run(platform: Platform, usage: &Usage) -> Estimate {
        estimate(platform, usage, &table()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn lambda_duration_is_memory_times_time() {
        // 3,000,000 × 0.25 GB × 0.2 s = 150,000 GB-s, all free; without: × $0.0000166667.
        let mut u = usage(3_000_000, 1, false);
        u.memory_mb = Some(256);
        u.duration_ms = 200;
        u.arch = Arch::X86_64;
        let e = run(Platform::AwsLambdaSes, &u);
        let line = e.lines.iter().find(|l| l.item == "duration");
        assert_eq!(line.map(|l| l.quantity), Some(Fixed::from_int(150_000)));
        assert_eq!(cost_of(&e, "lambda_gb_seconds_x86_64"), "2.5000");
        u.free_tier = true;
        assert_eq!(
            cost_of(&run(Platform::AwsLambdaSes, &u), "lambda_gb_seconds_x86_64"),
            "0.0000"
        );
    }

    #[test]
    fn free_tier_covers_only_what_it_offers() {
        // 1.5M requests with 1M free: 500,000 × $0.20 / 1M = $0.10.
        let e = run(Platform::AwsLambdaSes, &usage(1_500_000, 1, true));
        let line = e.lines.iter().find(|l| l.price == "lambda_requests");
        assert_eq!(line.map(|l| l.billable), Some(Fixed::from_int(500_000)));
        assert_eq!(cost_of(&e, "lambda_requests"), "0.1000");
    }

    #[test]
    fn sqs_batches_cut_invocations_not_emails() {
        let mut u = usage(95, 2, false);
        u.batch = 10;
        let e = run(Platform::AwsLambdaSqsSes, &u);
        let requests = e.lines.iter().find(|l| l.price == "lambda_requests");
        // 95 uploads in batches of 10 is 10 invocations, the last one short.
        assert_eq!(requests.map(|l| l.quantity), Some(Fixed::from_int(10)));
        let sqs = e.lines.iter().find(|l| l.price == "sqs_requests");
        assert_eq!(
            sqs.map(|l| l.quantity),
            Some(Fixed::from_int(95 + 20 + SQS_IDLE_POLLS))
        );
        assert_eq!(cost_of(&e, "ses_emails"), "0.0190");
    }

    #[test]
    fn cloud_run_rounds_each_request_up_to_100_ms() {
        let mut u = usage(1_000, 1, false);
        u.duration_ms = 120;
        let e = run(Platform::GcpCloudRunSendgrid, &u);
        let cpu = e.lines.iter().find(|l| l.price == "cloud_run_vcpu_seconds");
        // 1,000 requests × 0.2 s × 1 vCPU.
        assert_eq!(cpu.map(|l| l.quantity), Some(Fixed::from_int(200)));
    }

    #[test]
    fn sendgrid_picks_the_cheapest_plan_that_fits() {
        let e = run(Platform::GcpCloudRunSendgrid, &usage(40_000, 1, true));
        let plan = e.lines.iter().find(|l| l.service == "Twilio SendGrid");
        assert_eq!(plan.map(|l| l.item.as_str()), Some("Essentials 50K plan"));
        let e = run(Platform::GcpCloudRunSendgrid, &usage(50_000, 2, true));
        let plan = e.lines.iter().find(|l| l.service == "Twilio SendGrid");
        assert_eq!(plan.map(|l| l.item.as_str()), Some("Essentials 100K plan"));
        let err = estimate(
            Platform::GcpCloudRunSendgrid,
            &usage(1_000_000, 2, true),
            &table(),
        );
        assert!(matches!(
            err,
            Err(CostError::NoSendGridPlan {
                emails: 2_000_000,
                ..
            })
        ));
    }

    #[test]
    fn functions_bill_at_least_100_ms_and_128_mb_steps() {
        let mut u = usage(1_000, 1, false);
        u.duration_ms = 30;
        u.memory_mb = Some(130);
        let e = run(Platform::AzureFunctionsEventGrid, &u);
        let time = e.lines.iter().find(|l| l.price == "functions_gb_seconds");
        // 1,000 × 256 MB / 1,024 × 0.1 s = 25 GB-s.
        assert_eq!(time.map(|l| l.quantity), Some(Fixed::from_int(25)));
    }

    #[test]
    fn total_is_the_sum_of_the_rounded_lines() {
        for platform in Platform::ALL {
            let e = run(platform, &usage(123_457, 3, false));
            let sum = e.lines.iter().fold(Fixed::ZERO, |s, l| s.plus(l.cost));
            assert_eq!(e.total, sum, "{}", platform.name());
            assert!(e.lines.iter().all(|l| l.cost == l.cost.round(4)));
        }
    }

    #[test]
    fn batch_outside_what_lambda_reads_is_refused() {
        let mut u = usage(10, 1, true);
        u.batch = 11;
        let Err(err) = estimate(Platform::AwsLambdaSqsSes, &u, &table()) else {
            panic!("batch 11 was accepted");
        };
        assert_eq!(
            err.to_string(),
            "--batch 11 is outside 1 to 10, the SQS batch sizes Lambda reads"
        );
    }
}
