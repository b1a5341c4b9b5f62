//! [`SnsHttps`] end to end: messages signed with a throwaway RSA key, whose certificate (and
//! the confirmation link) a small server on 127.0.0.1 serves under the test-only prefix.
//!
//! Signatures are made independently of the code under test: SignatureVersion 2 with
//! aws-lc-rs's signer, version 1 (SHA1, which aws-lc-rs only verifies) with textbook RSA over
//! the PKCS#1 v1.5 encoding, and the string to sign is rebuilt here from the field lists.

use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use num_bigint::BigUint;
use rcgen::{CertificateParams, KeyPair, PKCS_RSA_SHA256, RsaKeySize, date_time_ymd};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use x509_parser::der_parser::parse_der;

use super::*;
use crate::sources::sns::tests::wrapped_put;
use crate::sources::{Payload, Record, parse};

type TestResult = Result<(), Box<dyn Error>>;

pub(crate) const TOPIC: &str = "arn:aws:sns:eu-west-1:111122223333:acme-uploads-events";
pub(crate) const NOTIFICATION: &str =
    include_str!("../../../tests/fixtures/sns_https/notification.json");
pub(crate) const SUBSCRIPTION: &str =
    include_str!("../../../tests/fixtures/sns_https/subscription_confirmation.json");
const UNSUBSCRIPTION: &str =
    include_str!("../../../tests/fixtures/sns_https/unsubscribe_confirmation.json");

/// DER `DigestInfo` header for SHA1 (RFC 8017, section 9.2, note 1).
const SHA1_DIGEST_INFO: [u8; 15] = [
    0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
];

/// The throwaway signing key and two certificates for it: one valid, one long expired.
struct Signer {
    pkcs8: Vec<u8>,
    modulus: BigUint,
    private_exponent: BigUint,
    cert_pem: String,
    expired_pem: String,
}

/// RSA key generation takes a moment; every test shares one key.
static SIGNER: LazyLock<Signer> = LazyLock::new(|| Signer::generate().expect("throwaway key"));

impl Signer {
    fn generate() -> Result<Signer, Box<dyn Error>> {
        let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)?;
        let pkcs8 = key.serialize_der();
        let (modulus, private_exponent) = rsa_numbers(&pkcs8)?;
        Ok(Signer {
            cert_pem: certificate(&key, (2000, 4000))?,
            expired_pem: certificate(&key, (2000, 2001))?,
            pkcs8,
            modulus,
            private_exponent,
        })
    }

    fn sign(&self, version: &str, text: &str) -> Result<Vec<u8>, Box<dyn Error>> {
        if version == "1" {
            return Ok(self.sign_sha1(text));
        }
        let key = RsaKeyPair::from_pkcs8(&self.pkcs8)?;
        let mut signature = vec![0; key.public_modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            text.as_bytes(),
            &mut signature,
        )?;
        Ok(signature)
    }

    /// RSASSA-PKCS1-v1_5 with SHA1: `0x00 0x01 0xff.. 0x00 DigestInfo`, raised to `d`.
    fn sign_sha1(&self, text: &str) -> Vec<u8> {
        let size = self.modulus.to_bytes_be().len();
        let hash = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, text.as_bytes());
        let mut encoded = vec![0x00, 0x01];
        encoded.resize(
            size - SHA1_DIGEST_INFO.len() - hash.as_ref().len() - 1,
            0xff,
        );
        encoded.push(0x00);
        encoded.extend_from_slice(&SHA1_DIGEST_INFO);
        encoded.extend_from_slice(hash.as_ref());
        let signature = BigUint::from_bytes_be(&encoded)
            .modpow(&self.private_exponent, &self.modulus)
            .to_bytes_be();
        let mut padded = vec![0; size - signature.len()];
        padded.extend_from_slice(&signature);
        padded
    }
}

/// `n` and `d` from a PKCS#8 RSA key: `PrivateKeyInfo.privateKey` holds `RSAPrivateKey`,
/// whose second and fourth integers they are (RFC 8017, appendix A.1.2).
fn rsa_numbers(pkcs8: &[u8]) -> Result<(BigUint, BigUint), Box<dyn Error>> {
    let (_, info) = parse_der(pkcs8)?;
    let (_, key) = parse_der(info.as_sequence()?[2].as_slice()?)?;
    let numbers = key.as_sequence()?;
    let number = |index: usize| -> Result<BigUint, Box<dyn Error>> {
        Ok(BigUint::from_bytes_be(numbers[index].as_slice()?))
    };
    Ok((number(1)?, number(3)?))
}

fn certificate(key: &KeyPair, (from, to): (i32, i32)) -> Result<String, rcgen::Error> {
    let mut params = CertificateParams::new(vec!["sns.test.invalid".to_owned()])?;
    params.not_before = date_time_ymd(from, 1, 1);
    params.not_after = date_time_ymd(to, 1, 1);
    Ok(params.self_signed(key)?.pem())
}

/// Requests the local peer has answered, by what was asked for.
#[derive(Default)]
struct Hits {
    certs: AtomicUsize,
    confirmations: AtomicUsize,
    other: AtomicUsize,
}

/// A stand-in for SNS on 127.0.0.1: serves the certificates and the confirmation link under
/// `/sns/`, counts every request. It stops with the test's runtime.
pub(crate) struct Peer {
    pub(crate) prefix: String,
    hits: Arc<Hits>,
}

impl Peer {
    pub(crate) async fn start() -> Result<Peer, Box<dyn Error>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let hits = Arc::new(Hits::default());
        let app = Router::new()
            .route("/sns/cert.pem", get(serve_cert))
            .route("/sns/expired.pem", get(serve_expired))
            .route("/sns/confirm", get(serve_confirm))
            .route("/sns/confirm-broken", get(serve_broken))
            .fallback(serve_other)
            .with_state(Arc::clone(&hits));
        let prefix = format!("http://{}/sns/", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Peer { prefix, hits })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    pub(crate) fn receiver(&self) -> Result<SnsHttps, SetupError> {
        receiver_with_prefix(Some(self.prefix.clone()))
    }

    pub(crate) fn hits(&self) -> (usize, usize, usize) {
        let count = |counter: &AtomicUsize| counter.load(Ordering::SeqCst);
        (
            count(&self.hits.certs),
            count(&self.hits.confirmations),
            count(&self.hits.other),
        )
    }

    /// A fixture made current and signed: certificate and confirmation link on this peer,
    /// `Timestamp` now, `SignatureVersion` as given.
    pub(crate) fn signed(&self, fixture: &str, version: &str) -> Result<Value, Box<dyn Error>> {
        let mut doc: Value = serde_json::from_str(fixture)?;
        doc["SigningCertURL"] = json!(self.url("cert.pem"));
        if doc.get("SubscribeURL").is_some() {
            let url = self.url("confirm?Action=ConfirmSubscription&Token=2336412f37fb687f5");
            doc["SubscribeURL"] = json!(url);
        }
        doc["Timestamp"] = json!(Timestamp::now().to_string());
        doc["SignatureVersion"] = json!(version);
        sign(&mut doc)?;
        Ok(doc)
    }
}

async fn serve_cert(State(hits): State<Arc<Hits>>) -> String {
    hits.certs.fetch_add(1, Ordering::SeqCst);
    SIGNER.cert_pem.clone()
}

async fn serve_expired(State(hits): State<Arc<Hits>>) -> String {
    hits.certs.fetch_add(1, Ordering::SeqCst);
    SIGNER.expired_pem.clone()
}

async fn serve_confirm(State(hits): State<Arc<Hits>>) -> &'static str {
    hits.confirmations.fetch_add(1, Ordering::SeqCst);
    "<ConfirmSubscriptionResponse/>"
}

async fn serve_broken(State(hits): State<Arc<Hits>>) -> StatusCode {
    hits.confirmations.fetch_add(1, Ordering::SeqCst);
    StatusCode::INTERNAL_SERVER_ERROR
}

async fn serve_other(State(hits): State<Arc<Hits>>) -> StatusCode {
    hits.other.fetch_add(1, Ordering::SeqCst);
    StatusCode::NOT_FOUND
}

fn receiver_with_prefix(prefix: Option<String>) -> Result<SnsHttps, SetupError> {
    SnsHttps::new(SnsHttpsOptions {
        allowed_topics: vec![TOPIC.to_owned()],
        test_only_url_prefix: prefix,
    })
}

/// Replaces `Signature` with one over the document's current fields.
pub(crate) fn sign(doc: &mut Value) -> Result<(), Box<dyn Error>> {
    let version = doc["SignatureVersion"].as_str().unwrap_or("2").to_owned();
    let signature = SIGNER.sign(&version, &string_to_sign(doc))?;
    doc["Signature"] = json!(STANDARD.encode(signature));
    Ok(())
}

/// The string to sign, from AWS's field lists for each message type.
fn string_to_sign(doc: &Value) -> String {
    let keys: &[&str] = if doc["Type"] == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let present = keys
        .iter()
        .filter_map(|key| Some((key, doc.get(*key)?.as_str()?)));
    present
        .map(|(key, value)| format!("{key}\n{value}\n"))
        .collect()
}

async fn receive(receiver: &SnsHttps, doc: &Value) -> Result<Received, SnsHttpsError> {
    receiver.receive(doc.to_string().as_bytes()).await
}

/// Asserts `got` failed with `status` and names what matched `pattern`.
macro_rules! assert_refused {
    ($got:expr, $pattern:pat, $status:expr) => {
        let got = $got;
        assert!(matches!(&got, Err($pattern)), "{got:?}");
        if let Err(err) = &got {
            assert_eq!(err.status(), $status, "{err}");
            assert_eq!(err.is_transient(), $status >= 500, "{err}");
        }
    };
}

#[tokio::test]
async fn signed_notification_yields_the_s3_event() -> TestResult {
    let peer = Peer::start().await?;
    let receiver = peer.receiver()?;
    for version in ["1", "2"] {
        let got = receive(&receiver, &peer.signed(NOTIFICATION, version)?).await?;
        let Received::Notification {
            topic_arn,
            message_id,
            message,
        } = got
        else {
            panic!("version {version}: {got:?}");
        };
        assert_eq!(topic_arn, TOPIC);
        assert_eq!(message_id, "3f9a1c2e-8b7d-5e4f-a6c1-2d3e4f5a6b7c");
        let want = Payload::Records(vec![Ok(Record::Created(wrapped_put()?))]);
        assert_eq!(parse(message.as_bytes())?, want);
    }
    assert_eq!(peer.hits(), (1, 0, 0), "the certificate is fetched once");
    Ok(())
}

#[tokio::test]
async fn notification_without_subject_verifies() -> TestResult {
    let peer = Peer::start().await?;
    let mut doc = peer.signed(NOTIFICATION, "2")?;
    doc.as_object_mut().map(|doc| doc.remove("Subject"));
    sign(&mut doc)?;
    let got = receive(&peer.receiver()?, &doc).await?;
    assert!(matches!(got, Received::Notification { .. }), "{got:?}");
    Ok(())
}

#[tokio::test]
async fn subscription_to_allowed_topic_is_confirmed_once() -> TestResult {
    let peer = Peer::start().await?;
    let receiver = peer.receiver()?;
    for version in ["1", "2"] {
        let doc = peer.signed(SUBSCRIPTION, version)?;
        let before = peer.hits().1;
        let got = receive(&receiver, &doc).await?;
        let topic_arn = TOPIC.to_owned();
        assert_eq!(got, Received::Confirmed { topic_arn });
        assert_eq!(peer.hits().1, before + 1, "version {version}");
    }
    Ok(())
}

#[tokio::test]
async fn subscription_to_other_topic_is_refused_unvisited() -> TestResult {
    let peer = Peer::start().await?;
    let mut doc = peer.signed(SUBSCRIPTION, "2")?;
    doc["TopicArn"] = json!("arn:aws:sns:eu-west-1:444455556666:someone-elses");
    sign(&mut doc)?;
    let got = receive(&peer.receiver()?, &doc).await;
    assert_refused!(got, SnsHttpsError::TopicNotAllowed { .. }, 403);
    assert_eq!(peer.hits(), (0, 0, 0), "nothing fetched, nothing confirmed");
    Ok(())
}

#[tokio::test]
async fn empty_allowed_topics_accepts_nothing() -> TestResult {
    let peer = Peer::start().await?;
    let receiver = SnsHttps::new(SnsHttpsOptions {
        allowed_topics: Vec::new(),
        test_only_url_prefix: Some(peer.prefix.clone()),
    })?;
    let got = receive(&receiver, &peer.signed(SUBSCRIPTION, "2")?).await;
    assert_refused!(got, SnsHttpsError::TopicNotAllowed { .. }, 403);
    assert_eq!(peer.hits(), (0, 0, 0));
    Ok(())
}

#[tokio::test]
async fn message_changed_after_signing_is_refused() -> TestResult {
    let peer = Peer::start().await?;
    let receiver = peer.receiver()?;
    for version in ["1", "2"] {
        let mut doc = peer.signed(NOTIFICATION, version)?;
        let signed = doc["Message"].as_str().unwrap_or_default();
        let forged = signed.replacen("acme-uploads", "acme-uploadz", 1);
        assert_ne!(forged, signed, "one byte changed");
        doc["Message"] = json!(forged);
        let got = receive(&receiver, &doc).await;
        assert_refused!(got, SnsHttpsError::BadSignature { .. }, 403);
    }
    Ok(())
}

#[tokio::test]
async fn confirmation_changed_after_signing_is_not_visited() -> TestResult {
    let peer = Peer::start().await?;
    let mut doc = peer.signed(SUBSCRIPTION, "2")?;
    doc["SubscribeURL"] = json!(peer.url("confirm?Action=ConfirmSubscription&Token=other"));
    let got = receive(&peer.receiver()?, &doc).await;
    assert_refused!(got, SnsHttpsError::BadSignature { .. }, 403);
    assert_eq!(
        peer.hits(),
        (1, 0, 0),
        "certificate fetched, link never visited"
    );
    Ok(())
}

#[tokio::test]
async fn certificate_off_sns_hosts_is_never_fetched() -> TestResult {
    let peer = Peer::start().await?;
    let outside_prefix = peer.prefix.replace("/sns/", "/elsewhere/cert.pem");
    for url in ["https://evil.example.com/cert.pem", outside_prefix.as_str()] {
        let mut doc = peer.signed(NOTIFICATION, "2")?;
        doc["SigningCertURL"] = json!(url);
        let got = receive(&peer.receiver()?, &doc).await;
        assert_refused!(
            got,
            SnsHttpsError::UntrustedUrl {
                field: "SigningCertURL",
                ..
            },
            403
        );
    }
    assert_eq!(peer.hits(), (0, 0, 0));
    Ok(())
}

#[tokio::test]
async fn signed_subscribe_url_off_sns_hosts_is_never_visited() -> TestResult {
    let peer = Peer::start().await?;
    let mut doc = peer.signed(SUBSCRIPTION, "2")?;
    doc["SubscribeURL"] = json!("https://evil.example.com/?Action=ConfirmSubscription");
    sign(&mut doc)?;
    let got = receive(&peer.receiver()?, &doc).await;
    assert_refused!(
        got,
        SnsHttpsError::UntrustedUrl {
            field: "SubscribeURL",
            ..
        },
        403
    );
    assert_eq!(peer.hits(), (0, 0, 0));
    Ok(())
}

#[tokio::test]
async fn without_the_test_prefix_the_local_certificate_is_refused() -> TestResult {
    let peer = Peer::start().await?;
    let production = receiver_with_prefix(None)?;
    let got = receive(&production, &peer.signed(NOTIFICATION, "2")?).await;
    assert_refused!(got, SnsHttpsError::UntrustedUrl { .. }, 403);
    assert_eq!(peer.hits(), (0, 0, 0));
    Ok(())
}

#[tokio::test]
async fn test_prefix_off_loopback_is_refused_at_start() {
    for prefix in ["http://10.1.2.3:8080/", "http://localhost:8080/"] {
        let got = receiver_with_prefix(Some(prefix.to_owned()));
        assert!(
            matches!(got, Err(SetupError::TestPrefix { .. })),
            "{prefix}"
        );
    }
}

#[tokio::test]
async fn unknown_signature_version_is_refused() -> TestResult {
    let peer = Peer::start().await?;
    let got = receive(&peer.receiver()?, &peer.signed(NOTIFICATION, "3")?).await;
    assert_refused!(got, SnsHttpsError::UnsupportedSignatureVersion { .. }, 403);
    assert_eq!(peer.hits(), (0, 0, 0));
    Ok(())
}

#[tokio::test]
async fn unsubscription_is_acknowledged_unvisited() -> TestResult {
    let peer = Peer::start().await?;
    let got = receive(&peer.receiver()?, &peer.signed(UNSUBSCRIPTION, "2")?).await?;
    let topic_arn = TOPIC.to_owned();
    assert_eq!(got, Received::Unsubscribed { topic_arn });
    assert_eq!(peer.hits(), (1, 0, 0), "its SubscribeURL would resubscribe");
    Ok(())
}

#[tokio::test]
async fn malformed_bodies_are_400() -> TestResult {
    let peer = Peer::start().await?;
    let receiver = peer.receiver()?;
    let mut unsigned = peer.signed(NOTIFICATION, "2")?;
    unsigned.as_object_mut().map(|doc| doc.remove("Signature"));
    let mut not_base64 = peer.signed(NOTIFICATION, "2")?;
    not_base64["Signature"] = json!("not base64!");
    let mut bad_time = peer.signed(NOTIFICATION, "2")?;
    bad_time["Timestamp"] = json!("yesterday");
    let mut other_type = peer.signed(NOTIFICATION, "2")?;
    other_type["Type"] = json!("Telegram");
    let bodies = [
        b"{\"Type\": \"Notification\",".to_vec(),
        b"[]".to_vec(),
        unsigned.to_string().into_bytes(),
        not_base64.to_string().into_bytes(),
        bad_time.to_string().into_bytes(),
        other_type.to_string().into_bytes(),
    ];
    for body in bodies {
        let got = receiver.receive(&body).await;
        assert!(
            matches!(got, Err(ref err) if err.status() == 400),
            "{got:?}"
        );
    }
    assert_eq!(peer.hits(), (0, 0, 0));
    Ok(())
}

#[tokio::test]
async fn stale_and_future_timestamps_are_refused() -> TestResult {
    let peer = Peer::start().await?;
    let receiver = peer.receiver()?;
    let now = Timestamp::now();
    for sent in [
        now - SignedDuration::from_hours(3),
        now + SignedDuration::from_hours(1),
    ] {
        let mut doc = peer.signed(NOTIFICATION, "2")?;
        doc["Timestamp"] = json!(sent.to_string());
        sign(&mut doc)?;
        let got = receive(&receiver, &doc).await;
        assert_refused!(got, SnsHttpsError::Stale { .. }, 403);
    }
    assert_eq!(peer.hits(), (0, 0, 0));
    Ok(())
}

#[tokio::test]
async fn expired_certificate_is_refused() -> TestResult {
    let peer = Peer::start().await?;
    let mut doc = peer.signed(NOTIFICATION, "2")?;
    doc["SigningCertURL"] = json!(peer.url("expired.pem"));
    let got = receive(&peer.receiver()?, &doc).await;
    assert_refused!(got, SnsHttpsError::BadCertificate { .. }, 403);
    Ok(())
}

#[tokio::test]
async fn certificate_host_down_is_transient() -> TestResult {
    let closed = TcpListener::bind("127.0.0.1:0").await?;
    let prefix = format!("http://{}/sns/", closed.local_addr()?);
    drop(closed);
    let peer = Peer::start().await?;
    let mut doc = peer.signed(NOTIFICATION, "2")?;
    doc["SigningCertURL"] = json!(format!("{prefix}cert.pem"));
    let got = receive(&receiver_with_prefix(Some(prefix))?, &doc).await;
    assert_refused!(got, SnsHttpsError::CertificateFetch { .. }, 503);
    Ok(())
}

#[tokio::test]
async fn failed_confirmation_is_transient() -> TestResult {
    let peer = Peer::start().await?;
    let mut doc = peer.signed(SUBSCRIPTION, "2")?;
    doc["SubscribeURL"] = json!(peer.url("confirm-broken?Action=ConfirmSubscription"));
    sign(&mut doc)?;
    let got = receive(&peer.receiver()?, &doc).await;
    assert_refused!(got, SnsHttpsError::ConfirmFailed { .. }, 503);
    assert_eq!(peer.hits().1, 1);
    Ok(())
}

#[test]
fn receiver_and_its_future_can_cross_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let Ok(receiver) = receiver_with_prefix(None) else {
        panic!("receiver");
    };
    send_sync(&receiver);
    send(&receiver.receive(b"{}"));
}
