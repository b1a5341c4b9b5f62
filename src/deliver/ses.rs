//! Amazon SES delivery through the SES v2 `SendEmail` API.
//!
//! The email goes as a raw MIME message built by [`super::message`], so text and HTML parts,
//! `Message-ID`, `Reply-To` and `X-Herald-Rule` arrive exactly as with SMTP. Recipients (to,
//! cc and bcc) go as the API's destinations; Bcc never appears in a header.
//!
//! <https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html>

use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
use tracing::debug;

use super::{DeliveryError, Email, Receipt, SendFuture, Sender, message};
use crate::aws::{self, AwsSetupError};

/// The name in receipts, errors and logs.
const NAME: &str = "ses";

/// SES v2 refuses messages larger than this after encoding.
const MAX_MESSAGE_BYTES: usize = 40 * 1024 * 1024;

/// Everything needed to build an [`SesSender`]; produced by config validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SesSettings {
    /// Region override; `None` uses the standard AWS chain.
    pub region: Option<String>,
    /// Configuration set named on every send.
    pub configuration_set: Option<String>,
}

/// Sends email through SES v2 with credentials from the standard AWS chain.
#[derive(Debug, Clone)]
pub struct SesSender {
    client: Client,
    configuration_set: Option<String>,
}

impl SesSender {
    /// Loads the AWS config (region, credentials provider, endpoint) and builds the client.
    /// Credentials are resolved on the first send, not here.
    pub async fn new(settings: &SesSettings) -> Result<SesSender, AwsSetupError> {
        let region = settings.region.as_deref();
        let config = aws::sdk_config(NAME, region, " or [sender] region").await?;
        Ok(SesSender {
            client: Client::new(&config),
            configuration_set: settings.configuration_set.clone(),
        })
    }

    async fn send_raw(&self, email: &Email) -> Result<Receipt, DeliveryError> {
        let raw = message::build(email)?.formatted();
        if raw.len() > MAX_MESSAGE_BYTES {
            let reason = format!("message is {} bytes; ses takes at most 40 MiB", raw.len());
            return Err(permanent(reason));
        }
        let content = RawMessage::builder()
            .data(Blob::new(raw))
            .build()
            .map_err(|err| permanent(format!("cannot build the request: {err}")))?;
        let from = email.from.email.to_string();
        let sent = self
            .client
            .send_email()
            .from_email_address(&from)
            .destination(destination(email))
            .content(EmailContent::builder().raw(content).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await;
        match sent {
            Ok(output) => {
                let id = output.message_id().unwrap_or("(no id)");
                Ok(Receipt {
                    sender: NAME,
                    detail: format!("ses message id {id}"),
                })
            }
            Err(err) => Err(classify(&Failure::from_sdk(&err), &from)),
        }
    }
}

impl Sender for SesSender {
    fn name(&self) -> &'static str {
        NAME
    }

    fn send<'a>(&'a self, email: &'a Email) -> SendFuture<'a> {
        Box::pin(async move {
            let result = self.send_raw(email).await;
            if let Err(err) = &result {
                debug!(message_id = %email.message_id, transient = err.is_transient(),
                    error = %err, "ses send failed");
            }
            result
        })
    }
}

/// Every envelope recipient, as bare addresses (display names stay in the MIME headers).
fn destination(email: &Email) -> Destination {
    let addresses = |boxes: &[lettre::message::Mailbox]| {
        let list: Vec<String> = boxes.iter().map(|b| b.email.to_string()).collect();
        (!list.is_empty()).then_some(list)
    };
    Destination::builder()
        .set_to_addresses(addresses(&email.to))
        .set_cc_addresses(addresses(&email.cc))
        .set_bcc_addresses(addresses(&email.bcc))
        .build()
}

/// What a failed `SendEmail` call amounts to, reduced to what classification needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// No usable answer: a timeout, a connection failure or an unreadable response.
    NoAnswer(String),
    /// SES answered with an error.
    Service {
        /// The error code, e.g. `MessageRejected`; none when the body could not be read.
        code: Option<String>,
        /// SES's own explanation.
        message: Option<String>,
        /// The HTTP status.
        status: u16,
    },
    /// The request never left: it could not be built.
    Request(String),
}

impl Failure {
    fn from_sdk(err: &SdkError<SendEmailError, aws_sdk_sesv2::config::http::HttpResponse>) -> Self {
        match err {
            SdkError::TimeoutError(_) => Failure::NoAnswer("no answer in time".into()),
            SdkError::DispatchFailure(_) => {
                Failure::NoAnswer(format!("cannot reach ses: {}", DisplayErrorContext(err)))
            }
            SdkError::ResponseError(response) => Failure::Service {
                code: None,
                message: Some("unreadable response".into()),
                status: response.raw().status().as_u16(),
            },
            SdkError::ServiceError(service) => Failure::Service {
                code: err.code().map(str::to_owned),
                message: err.message().map(str::to_owned),
                status: service.raw().status().as_u16(),
            },
            SdkError::ConstructionFailure(_) => Failure::Request(format!("{err}")),
            _ => Failure::NoAnswer(format!("{err}")),
        }
    }
}

/// Sorts a failed send by whether sending again later can help, and says what to do.
///
/// Throttling, timeouts, connection failures and 5xx are transient. Rejections, unverified
/// identities, a suspended or paused account and bad requests are permanent: they need an
/// operator, and the message says which address or setting to look at.
fn classify(failure: &Failure, from: &str) -> DeliveryError {
    let (code, message, status) = match failure {
        Failure::NoAnswer(reason) => return transient(reason.clone()),
        Failure::Request(reason) => {
            return permanent(format!("cannot build the request: {reason}"));
        }
        Failure::Service {
            code,
            message,
            status,
        } => (code.as_deref(), message.as_deref().unwrap_or(""), *status),
    };
    match code {
        Some("TooManyRequestsException" | "LimitExceededException" | "ThrottlingException") => {
            transient(format!(
                "ses is throttling sends ({}): {message}",
                code.unwrap_or("")
            ))
        }
        Some("MessageRejected") if is_unverified(message) => permanent(unverified(message, from)),
        Some("MessageRejected") => permanent(format!("message rejected: {message}")),
        Some("MailFromDomainNotVerifiedException") => permanent(format!(
            "the custom MAIL FROM domain of {from} is not verified (fix its DNS records in SES, \
             or stop using a custom MAIL FROM): {message}"
        )),
        Some("AccountSuspendedException") => permanent(format!(
            "the SES account is suspended from sending (see the SES console and contact AWS \
             support): {message}"
        )),
        Some("SendingPausedException") => permanent(format!(
            "sending is paused for this account or configuration set (resume it in SES): \
             {message}"
        )),
        Some("NotFoundException") => permanent(format!(
            "{message} (check [sender] configuration_set and the region)"
        )),
        // Throttling under a code this list does not know yet is still throttling.
        _ if status == 429 || status >= 500 => {
            transient(format!("ses answered {status}: {message}"))
        }
        Some(code) => permanent(format!("{code}: {message}")),
        None => permanent(format!("ses answered {status}: {message}")),
    }
}

/// SES says "Email address is not verified. The following identities failed the check in
/// region ...: a@example.com, b@example.com"; moto says "Did not have authority to send from
/// email a@example.com".
fn is_unverified(message: &str) -> bool {
    message.contains("not verified") || message.contains("authority to send from")
}

/// Names the unverified addresses: the sender's, or recipients' when in the sandbox.
fn unverified(message: &str, from: &str) -> String {
    let named = unverified_addresses(message);
    let recipients: Vec<&str> = named
        .iter()
        .copied()
        .filter(|a| !a.eq_ignore_ascii_case(from))
        .collect();
    if named.is_empty() || named.len() > recipients.len() {
        return format!(
            "sender address {from} is not verified in SES (verify it, or in the sandbox verify \
             recipients too)"
        );
    }
    format!(
        "recipient address {} is not verified in SES (the account is in the sandbox: verify \
         recipients, or request production access)",
        recipients.join(", ")
    )
}

/// The addresses an unverified-identity message lists after its last colon, or after "from
/// email".
fn unverified_addresses(message: &str) -> Vec<&str> {
    let tail = match message.rsplit_once("from email ") {
        Some((_, tail)) => tail,
        None => message.rsplit_once(':').map_or("", |(_, tail)| tail),
    };
    tail.split([',', ' '])
        .map(|word| word.trim_matches(|c: char| c == '.' || c == '<' || c == '>'))
        .filter(|word| word.contains('@'))
        .collect()
}

fn transient(reason: String) -> DeliveryError {
    DeliveryError::Transient {
        sender: NAME,
        reason,
        source: None,
        retry_after: None,
    }
}

fn permanent(reason: String) -> DeliveryError {
    DeliveryError::Permanent {
        sender: NAME,
        reason,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::message::tests::sample_email;

    const FROM: &str = "herald@example.com";

    fn service(code: &str, message: &str, status: u16) -> Failure {
        Failure::Service {
            code: Some(code.into()),
            message: Some(message.into()),
            status,
        }
    }

    #[test]
    fn throttling_timeouts_and_5xx_are_transient() {
        let cases = [
            service("TooManyRequestsException", "slow down", 429),
            service("LimitExceededException", "daily quota", 400),
            service("InternalFailure", "oops", 500),
            service("SomeNewThrottlingException", "later", 429),
            Failure::Service {
                code: None,
                message: None,
                status: 503,
            },
            Failure::NoAnswer("no answer in time".into()),
        ];
        for failure in cases {
            let err = classify(&failure, FROM);
            assert!(err.is_transient(), "{failure:?}: {err}");
        }
    }

    #[test]
    fn rejections_and_account_problems_are_permanent() {
        let cases = [
            (
                "MessageRejected",
                "Email address is on the suppression list",
            ),
            ("MailFromDomainNotVerifiedException", "mail from"),
            ("AccountSuspendedException", "suspended"),
            ("SendingPausedException", "paused"),
            ("BadRequestException", "Missing final '@domain'"),
            ("NotFoundException", "Configuration set <x> does not exist"),
        ];
        for (code, message) in cases {
            let err = classify(&service(code, message, 400), FROM);
            assert!(!err.is_transient(), "{code}: {err}");
            assert!(
                err.to_string().starts_with("ses rejected the message: "),
                "{err}"
            );
        }
    }

    #[test]
    fn unverified_sender_is_named_with_what_to_do() {
        let aws = "Email address is not verified. The following identities failed the check \
                   in region EU-WEST-1: herald@example.com";
        let moto = "Did not have authority to send from email herald@example.com";
        let expected = "ses rejected the message: sender address herald@example.com is not \
                        verified in SES (verify it, or in the sandbox verify recipients too)";
        for message in [aws, moto, "Email address is not verified."] {
            let err = classify(&service("MessageRejected", message, 400), FROM);
            assert_eq!(err.to_string(), expected);
        }
    }

    #[test]
    fn unverified_recipient_in_the_sandbox_is_named() {
        let message = "Email address is not verified. The following identities failed the \
                       check in region US-EAST-1: legal@example.com, audit@example.com";
        let err = classify(&service("MessageRejected", message, 400), FROM);
        let text = err.to_string();
        assert!(
            text.contains("recipient address legal@example.com, audit@example.com"),
            "{text}"
        );
        assert!(text.contains("sandbox"), "{text}");
    }

    #[test]
    fn sdk_timeouts_become_transient_failures() {
        let err: SdkError<SendEmailError, aws_sdk_sesv2::config::http::HttpResponse> =
            SdkError::timeout_error("slow");
        let failure = Failure::from_sdk(&err);
        assert!(matches!(failure, Failure::NoAnswer(_)), "{failure:?}");
        assert!(classify(&failure, FROM).is_transient());
    }

    #[test]
    fn destinations_are_bare_addresses_including_bcc() {
        let destination = destination(&sample_email(None));
        assert_eq!(destination.to_addresses(), ["legal@example.com"]);
        assert_eq!(destination.cc_addresses(), ["audit@example.com"]);
        assert_eq!(destination.bcc_addresses(), ["secret-watcher@example.com"]);
    }
}
