//! The price table `herald cost` multiplies by: one TOML file, built in from
//! `src/cost/prices.toml`, replaceable as a whole with `--prices FILE`.
//!
//! Every price names its unit, the page it came from and the date it was checked (or
//! `"unverified"`), so the output can say where each number came from. The file is strict
//! like Herald's config: an unknown field or price, a missing price or a number that is not a
//! plain decimal string is an error naming the file and the field.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::fixed::Fixed;

/// The built-in table.
pub const BUILT_IN: &str = include_str!("prices.toml");

/// What `checked` says when a price could not be confirmed on its source page.
pub const UNVERIFIED: &str = "unverified";

/// Every price key the model reads. A table must define exactly these.
pub const REQUIRED: &[&str] = &[
    "s3_event_notifications",
    "lambda_requests",
    "lambda_gb_seconds_arm64",
    "lambda_gb_seconds_x86_64",
    "sqs_requests",
    "dynamodb_write_requests",
    "ses_emails",
    "cloudwatch_logs_ingestion",
    "eventarc_google_events",
    "pubsub_throughput",
    "cloud_run_requests",
    "cloud_run_vcpu_seconds",
    "cloud_run_gib_seconds",
    "event_grid_operations",
    "functions_executions",
    "functions_gb_seconds",
    "acs_emails",
    "acs_data",
];

/// A loaded price table.
#[derive(Debug, Clone)]
pub struct PriceTable {
    /// Where it came from, for messages and the footer.
    pub origin: TableOrigin,
    /// The `[table]` header: currency, region and when the whole table was reviewed.
    pub about: About,
    prices: BTreeMap<String, Price>,
    /// SendGrid's monthly plans, cheapest first.
    pub sendgrid_plans: Vec<Plan>,
}

/// Where a price table was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableOrigin {
    /// `src/cost/prices.toml`, compiled in.
    BuiltIn,
    /// A file given with `--prices`.
    File(PathBuf),
}

impl fmt::Display for TableOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableOrigin::BuiltIn => f.write_str("built-in table (src/cost/prices.toml)"),
            TableOrigin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The header of the table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct About {
    /// Currency of every price, e.g. `"USD"`.
    pub currency: String,
    /// The regions the prices are for; other regions differ.
    pub regions: String,
    /// When the table as a whole was last reviewed (`YYYY-MM-DD`).
    pub reviewed: String,
}

/// One price as the model uses it.
#[derive(Debug, Clone)]
pub struct Price {
    /// The provider's service, e.g. "AWS Lambda".
    pub service: String,
    /// Amount of money per `per` units.
    pub amount: Fixed,
    /// How many units `amount` buys, e.g. 1,000,000 requests.
    pub per: u64,
    /// The unit, e.g. `"request"`.
    pub unit: String,
    /// Units free each month, when free tiers are on.
    pub free: Fixed,
    /// The page the price is from.
    pub source: String,
    /// `YYYY-MM-DD` when it was checked there, or [`UNVERIFIED`].
    pub checked: String,
    /// How the price was confirmed, or what it leaves out.
    pub note: String,
}

impl Price {
    /// Whether the price could not be confirmed on its source.
    pub fn is_unverified(&self) -> bool {
        self.checked == UNVERIFIED
    }
}

/// One SendGrid plan: a flat monthly price for up to `emails` emails.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The plan's name, e.g. `"Essentials 50K"`.
    pub name: String,
    /// Emails a month the plan includes.
    pub emails: u64,
    /// Monthly price.
    pub amount: Fixed,
    /// The page the price is from.
    pub source: String,
    /// `YYYY-MM-DD` or [`UNVERIFIED`].
    pub checked: String,
}

/// A price table that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PricesError {
    /// The file could not be read.
    #[error("cannot read price table {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML of the table's shape (toml's message names line and field).
    #[error("price table {origin} is not valid: {message}")]
    Syntax {
        /// The table.
        origin: TableOrigin,
        /// toml's own description, with the line and the field.
        message: String,
    },
    /// The file parsed, but fields are wrong; every problem is listed.
    #[error("price table {origin} has {} problem(s): {}", problems.len(), problems.join("; "))]
    Invalid {
        /// The table.
        origin: TableOrigin,
        /// One entry per problem, each naming its field.
        problems: Vec<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    table: About,
    prices: BTreeMap<String, RawPrice>,
    #[serde(default)]
    sendgrid_plans: Vec<RawPlan>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    service: String,
    amount: String,
    per: u64,
    unit: String,
    free: Option<String>,
    source: String,
    checked: String,
    #[serde(default)]
    note: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    name: String,
    emails: u64,
    amount: String,
    source: String,
    checked: String,
}

impl PriceTable {
    /// The built-in table. It is tested to load, so failing here is a build defect.
    pub fn built_in() -> Result<PriceTable, PricesError> {
        PriceTable::parse(BUILT_IN, TableOrigin::BuiltIn)
    }

    /// Reads a table from a file, replacing the built-in one as a whole.
    pub fn from_file(path: &Path) -> Result<PriceTable, PricesError> {
        let text = std::fs::read_to_string(path).map_err(|source| PricesError::Read {
            path: path.to_owned(),
            source,
        })?;
        PriceTable::parse(&text, TableOrigin::File(path.to_owned()))
    }

    /// Parses and checks a table, collecting every problem before reporting.
    pub fn parse(text: &str, origin: TableOrigin) -> Result<PriceTable, PricesError> {
        let raw: RawTable = toml::from_str(text).map_err(|err| PricesError::Syntax {
            origin: origin.clone(),
            message: err.to_string().trim_end().to_owned(),
        })?;
        let mut problems = Vec::new();
        let prices = check_prices(raw.prices, &mut problems);
        let plans = check_plans(raw.sendgrid_plans, &mut problems);
        if !problems.is_empty() {
            return Err(PricesError::Invalid { origin, problems });
        }
        Ok(PriceTable {
            origin,
            about: raw.table,
            prices,
            sendgrid_plans: plans,
        })
    }

    /// The price under `key`. Every key in [`REQUIRED`] is present once a table has loaded,
    /// so a miss is a model bug; it falls back to a zero price named after the key rather
    /// than panic.
    pub fn get(&self, key: &str) -> Price {
        self.prices.get(key).cloned().unwrap_or_else(|| Price {
            service: key.to_owned(),
            amount: Fixed::ZERO,
            per: 1,
            unit: key.to_owned(),
            free: Fixed::ZERO,
            source: String::new(),
            checked: UNVERIFIED.to_owned(),
            note: format!("missing price {key}"),
        })
    }

    /// The keys of prices that could not be confirmed, plus unverified SendGrid plans.
    pub fn unverified(&self) -> Vec<String> {
        let prices = self.prices.iter().filter(|(_, p)| p.is_unverified());
        let plans = self
            .sendgrid_plans
            .iter()
            .filter(|p| p.checked == UNVERIFIED);
        prices
            .map(|(key, _)| key.clone())
            .chain(plans.map(|p| format!("sendgrid {}", p.name)))
            .collect()
    }
}

fn check_prices(
    raw: BTreeMap<String, RawPrice>,
    problems: &mut Vec<String>,
) -> BTreeMap<String, Price> {
    for key in REQUIRED {
        if !raw.contains_key(*key) {
            problems.push(format!(
                "prices.{key}: missing (every price the model uses is required)"
            ));
        }
    }
    let mut prices = BTreeMap::new();
    for (key, price) in raw {
        if !REQUIRED.contains(&key.as_str()) {
            problems.push(format!(
                "prices.{key}: unknown price (known: {})",
                REQUIRED.join(", ")
            ));
            continue;
        }
        if let Some(price) = check_price(&key, price, problems) {
            prices.insert(key, price);
        }
    }
    prices
}

fn check_price(key: &str, raw: RawPrice, problems: &mut Vec<String>) -> Option<Price> {
    let before = problems.len();
    let amount = decimal(&format!("prices.{key}.amount"), &raw.amount, problems);
    let free = match &raw.free {
        Some(free) => decimal(&format!("prices.{key}.free"), free, problems),
        None => Some(Fixed::ZERO),
    };
    if raw.per == 0 {
        problems.push(format!("prices.{key}.per: must be at least 1"));
    }
    check_provenance(
        &format!("prices.{key}"),
        &raw.source,
        &raw.checked,
        problems,
    );
    if raw.service.trim().is_empty() || raw.unit.trim().is_empty() {
        problems.push(format!("prices.{key}: service and unit must not be empty"));
    }
    if problems.len() > before {
        return None;
    }
    Some(Price {
        service: raw.service,
        amount: amount?,
        per: raw.per,
        unit: raw.unit,
        free: free?,
        source: raw.source,
        checked: raw.checked,
        note: raw.note,
    })
}

fn check_plans(raw: Vec<RawPlan>, problems: &mut Vec<String>) -> Vec<Plan> {
    if raw.is_empty() {
        problems.push("sendgrid_plans: at least one plan is required".to_owned());
    }
    let mut plans = Vec::new();
    for (i, plan) in raw.into_iter().enumerate() {
        let field = format!("sendgrid_plans[{i}] ({:?})", plan.name);
        let amount = decimal(&format!("{field}.amount"), &plan.amount, problems);
        check_provenance(&field, &plan.source, &plan.checked, problems);
        if plan.emails == 0 {
            problems.push(format!("{field}.emails: must be at least 1"));
        }
        if let Some(amount) = amount {
            plans.push(Plan {
                name: plan.name,
                emails: plan.emails,
                amount,
                source: plan.source,
                checked: plan.checked,
            });
        }
    }
    plans.sort_by_key(|p| p.amount);
    plans
}

fn decimal(field: &str, text: &str, problems: &mut Vec<String>) -> Option<Fixed> {
    match text.parse::<Fixed>() {
        Ok(value) => Some(value),
        Err(err) => {
            problems.push(format!("{field}: {err}"));
            None
        }
    }
}

/// A source must be an https page, and `checked` a date or the word "unverified".
fn check_provenance(field: &str, source: &str, checked: &str, problems: &mut Vec<String>) {
    if !source.starts_with("https://") {
        problems.push(format!(
            "{field}.source: {source:?} is not an https:// page"
        ));
    }
    if checked != UNVERIFIED && jiff::civil::Date::strptime("%Y-%m-%d", checked).is_err() {
        problems.push(format!(
            "{field}.checked: {checked:?} is neither a date (YYYY-MM-DD) nor \"{UNVERIFIED}\""
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem<T: std::fmt::Debug>(result: Result<T, PricesError>) -> String {
        match result {
            Ok(table) => panic!("expected an error, got {table:?}"),
            Err(err) => err.to_string(),
        }
    }

    fn built_in() -> PriceTable {
        PriceTable::built_in().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn built_in_table_loads_with_every_price() {
        let table = built_in();
        for key in REQUIRED {
            assert!(table.prices.contains_key(*key), "{key}");
        }
        assert_eq!(
            table.get("lambda_requests").amount,
            "0.20".parse().unwrap_or_default()
        );
        assert!(!table.sendgrid_plans.is_empty());
    }

    #[test]
    fn unknown_field_names_the_field() {
        let text = BUILT_IN.replacen("unit = \"request\"", "unit = \"request\"\ncolour = 1", 1);
        let err = PriceTable::parse(&text, TableOrigin::File("p.toml".into()));
        let message = problem(err);
        assert!(
            message.starts_with("price table p.toml is not valid:"),
            "{message}"
        );
        assert!(message.contains("unknown field `colour`"), "{message}");
    }

    #[test]
    fn float_amount_is_refused_with_its_line() {
        let text = BUILT_IN.replacen("amount = \"0.20\"", "amount = 0.20", 1);
        let message = problem(PriceTable::parse(&text, TableOrigin::BuiltIn));
        assert!(
            message.contains("invalid type: floating point"),
            "{message}"
        );
        assert!(message.contains("amount"), "{message}");
    }

    #[test]
    fn every_field_problem_is_listed_at_once() {
        let text = BUILT_IN
            .replacen("amount = \"0.20\"", "amount = \"twenty cents\"", 1)
            .replacen("checked = \"2026-12-04\"", "checked = \"last week\"", 1)
            .replacen("[prices.acs_data]", "[prices.acs_megabytes]", 1);
        let err = PriceTable::parse(&text, TableOrigin::File("mine.toml".into())).map(|_| ());
        let Err(PricesError::Invalid { origin, problems }) = err else {
            panic!("expected field problems, got {err:?}");
        };
        assert_eq!(origin, TableOrigin::File("mine.toml".into()));
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("prices.acs_data: missing"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("prices.acs_megabytes: unknown price"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains(".amount: \"twenty cents\" is not a decimal"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains(".checked: \"last week\" is neither a date"))
        );
    }

    #[test]
    fn missing_file_names_the_file() {
        let err = PriceTable::from_file(Path::new("no/such/prices.toml"));
        assert_eq!(problem(err), "cannot read price table no/such/prices.toml");
    }
}
