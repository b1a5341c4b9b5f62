//! Turns an [`Email`] into a standard MIME message (RFC 5322) that any SMTP server or mail
//! client accepts.
//!
//! lettre does the encoding: non-ASCII header text becomes RFC 2047 encoded-words, bodies get a
//! transfer encoding that fits them, and the `Bcc` header is used for the envelope and then
//! dropped, so blind copies stay blind.

use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue, MessageId};
use lettre::message::{MultiPart, SinglePart};

use super::{DeliveryError, Email};

/// The header naming the Herald rule that produced a message, for mail filters and debugging.
const RULE_HEADER: HeaderName = HeaderName::new_from_ascii_str("X-Herald-Rule");

/// Builds the MIME message for `email`: headers, envelope (including Bcc) and a UTF-8 body,
/// `multipart/alternative` (text, then HTML) when there is HTML, else a single `text/plain`.
///
/// Fails with [`DeliveryError::Permanent`] when the message cannot be built, e.g. with no
/// recipients; sending the same email again would fail the same way.
pub fn build(email: &Email) -> Result<Message, DeliveryError> {
    let mut builder = Message::builder()
        .from(email.from.clone())
        .subject(email.subject.as_str())
        .header(MessageId::from(format!("<{}>", email.message_id)))
        .raw_header(HeaderValue::new(RULE_HEADER, email.rule.clone()))
        .date_now();
    for to in &email.to {
        builder = builder.to(to.clone());
    }
    for cc in &email.cc {
        builder = builder.cc(cc.clone());
    }
    for bcc in &email.bcc {
        builder = builder.bcc(bcc.clone());
    }
    if let Some(reply_to) = &email.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }

    let built = match &email.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            email.text.clone(),
            html.clone(),
        )),
        None => builder.singlepart(SinglePart::plain(email.text.clone())),
    };
    built.map_err(|err| DeliveryError::Permanent {
        sender: "message",
        reason: format!("cannot build message {}: {err}", email.message_id),
        source: Some(Box::new(err)),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use lettre::message::Mailbox;

    use super::*;

    /// An email with every header in use.
    pub(crate) fn sample_email(html: Option<&str>) -> Email {
        let mailbox = |s: &str| s.parse::<Mailbox>().expect("valid mailbox");
        Email {
            from: mailbox("Uploads <uploads@example.com>"),
            to: vec![mailbox("Legal <legal@example.com>")],
            cc: vec![mailbox("audit@example.com")],
            bcc: vec![mailbox("secret-watcher@example.com")],
            reply_to: Some(mailbox("help@example.com")),
            subject: "New file in uploads: report.pdf".into(),
            text: "A new file arrived.\n".into(),
            html: html.map(str::to_owned),
            message_id: "abc123.contracts@herald.example.com".into(),
            rule: "contracts".into(),
        }
    }

    /// A deliberately small reader of formatted messages, enough to check what the tests
    /// need without trusting lettre to read back what lettre wrote.
    pub(crate) mod parse {
        /// The header block, unfolded, as `(name, value)` pairs.
        pub(crate) fn headers(raw: &str) -> Vec<(String, String)> {
            let head = raw.split("\r\n\r\n").next().unwrap_or("");
            let mut out: Vec<(String, String)> = Vec::new();
            for line in head.split("\r\n") {
                if line.starts_with([' ', '\t']) {
                    if let Some((_, value)) = out.last_mut() {
                        value.push_str(line);
                    }
                } else if let Some((name, value)) = line.split_once(':') {
                    out.push((name.to_owned(), value.trim_start().to_owned()));
                }
            }
            out
        }

        /// The first header named `name`, case-insensitively.
        pub(crate) fn header(raw: &str, name: &str) -> Option<String> {
            headers(raw)
                .into_iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        }

        /// Decodes RFC 2047 `=?utf-8?b?...?=` words. Spaces between two encoded words are
        /// folding and dropped (RFC 2047, section 6.2); other spaces are kept, collapsed.
        pub(crate) fn decode_words(value: &str) -> String {
            let mut bytes = Vec::new();
            let mut previous_encoded = None;
            for word in value.split_whitespace() {
                let inner = word
                    .strip_prefix("=?utf-8?b?")
                    .and_then(|w| w.strip_suffix("?="));
                if previous_encoded.is_some_and(|p| !(p && inner.is_some())) {
                    bytes.push(b' ');
                }
                match inner {
                    Some(b64) => bytes.extend(base64(b64)),
                    None => bytes.extend(word.as_bytes()),
                }
                previous_encoded = Some(inner.is_some());
            }
            String::from_utf8(bytes).expect("utf-8")
        }

        fn base64(text: &str) -> Vec<u8> {
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let sextets: Vec<u32> = text
                .bytes()
                .filter(|&b| b != b'=')
                .map(|b| ALPHABET.iter().position(|&a| a == b).expect("base64") as u32)
                .collect();
            let mut out = Vec::new();
            for chunk in sextets.chunks(4) {
                let joined = chunk
                    .iter()
                    .enumerate()
                    .fold(0, |acc, (i, s)| acc | (s << (18 - 6 * i)));
                let bytes = joined.to_be_bytes();
                out.extend(&bytes[1..chunk.len()]);
            }
            out
        }
    }

    fn formatted(email: &Email) -> String {
        let message = build(email).expect("builds");
        String::from_utf8(message.formatted()).expect("ascii message")
    }

    #[test]
    fn headers_are_set_and_bcc_is_only_in_the_envelope() {
        let email = sample_email(None);
        let message = build(&email).expect("builds");
        let raw = String::from_utf8(message.formatted()).expect("ascii");

        let header = |name| parse::header(&raw, name);
        assert_eq!(
            header("From").as_deref(),
            Some("Uploads <uploads@example.com>")
        );
        assert_eq!(header("To").as_deref(), Some("Legal <legal@example.com>"));
        assert_eq!(header("Cc").as_deref(), Some("audit@example.com"));
        assert_eq!(header("Reply-To").as_deref(), Some("help@example.com"));
        assert_eq!(
            header("Message-ID").as_deref(),
            Some("<abc123.contracts@herald.example.com>")
        );
        assert_eq!(header("X-Herald-Rule").as_deref(), Some("contracts"));
        assert!(header("Date").is_some());
        assert_eq!(header("Bcc"), None);
        assert!(!raw.contains("secret-watcher"));

        let envelope: Vec<String> = message
            .envelope()
            .to()
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            envelope,
            [
                "legal@example.com",
                "audit@example.com",
                "secret-watcher@example.com"
            ]
        );
    }

    #[test]
    fn text_only_is_a_single_utf8_part() {
        let raw = formatted(&sample_email(None));
        let content_type = parse::header(&raw, "Content-Type").expect("content type");
        assert_eq!(
            content_type.to_ascii_lowercase(),
            "text/plain; charset=utf-8"
        );
        assert!(raw.contains("\r\n\r\nA new file arrived.\r\n"), "{raw}");
    }

    #[test]
    fn html_makes_multipart_alternative_text_first() {
        let raw = formatted(&sample_email(Some("<p>A new file arrived.</p>")));
        let content_type = parse::header(&raw, "Content-Type").expect("content type");
        assert!(
            content_type.starts_with("multipart/alternative;"),
            "{content_type}"
        );

        let text_at = raw
            .find("Content-Type: text/plain; charset=utf-8")
            .expect("text");
        let html_at = raw
            .find("Content-Type: text/html; charset=utf-8")
            .expect("html");
        assert!(text_at < html_at);
        assert!(raw.contains("<p>A new file arrived.</p>"));
    }

    #[test]
    fn non_ascii_subject_is_an_encoded_word() {
        let mut email = sample_email(None);
        // Long enough that lettre folds it over several encoded words.
        email.subject = "New file: Café 東京 quarterly figures, 第三四半期 final.pdf".into();
        let raw = formatted(&email);

        let subject = parse::header(&raw, "Subject").expect("subject");
        assert!(subject.is_ascii());
        assert!(subject.contains("=?utf-8?b?"), "{subject}");
        assert_eq!(parse::decode_words(&subject), email.subject, "{subject}");
    }

    #[test]
    fn line_breaks_in_a_subject_cannot_add_headers() {
        let mut email = sample_email(None);
        email.subject = "x\r\nBcc: victim@example.com".into();
        let raw = formatted(&email);
        assert_eq!(parse::header(&raw, "Bcc"), None);
        assert!(!raw.contains("\r\nBcc:"));
    }

    #[test]
    fn missing_recipients_is_permanent() {
        let mut email = sample_email(None);
        email.to.clear();
        email.cc.clear();
        email.bcc.clear();
        let err = build(&email).expect_err("no recipients");
        assert!(!err.is_transient());
    }
}
