//! SNS signing certificates: fetched once per URL, parsed, kept in a small cache, and used to
//! check signatures.
//!
//! The certificate's own chain is not walked: what vouches for it is that it came over TLS
//! from an SNS host ([`super::urls`]), the same trust the AWS SDK validators rely on. Its
//! validity period is checked on every use, since a cached certificate can expire.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::signature::{RsaParameters, UnparsedPublicKey};
use jiff::Timestamp;
use url::Url;
use x509_parser::pem::parse_x509_pem;
use x509_parser::public_key::PublicKey;

use super::error::{FetchError, SnsHttpsError};

/// Certificates kept at once. SNS signs with one certificate per region and rotates it
/// rarely, so a handful covers every topic a deployment subscribes to.
const CACHED: usize = 8;

/// A PEM certificate is about 2 KB; anything much larger is not one.
const MAX_CERT_BYTES: usize = 64 * 1024;

/// The parts of a certificate verification needs.
#[derive(Debug)]
pub(super) struct SigningCert {
    /// The RSA public key as PKCS#1 `RSAPublicKey` DER, the form aws-lc-rs takes.
    public_key: Vec<u8>,
    /// Validity period, in seconds since the Unix epoch.
    not_before: i64,
    not_after: i64,
}

impl SigningCert {
    /// Reads the first PEM certificate in `pem`; it must carry an RSA key.
    pub fn from_pem(pem: &[u8]) -> Result<SigningCert, String> {
        let (_, pem) = parse_x509_pem(pem).map_err(|err| format!("not a PEM file ({err})"))?;
        let cert = pem
            .parse_x509()
            .map_err(|err| format!("not an x509 certificate ({err})"))?;
        let key = cert.public_key();
        if !matches!(key.parsed(), Ok(PublicKey::RSA(_))) {
            return Err("its public key is not RSA".to_owned());
        }
        Ok(SigningCert {
            public_key: key.subject_public_key.data.to_vec(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// Why the certificate cannot be used at `now`, if it cannot.
    pub fn check_validity(&self, now: Timestamp) -> Result<(), String> {
        let now = now.as_second();
        if now < self.not_before {
            Err("it is not valid yet".to_owned())
        } else if now > self.not_after {
            Err("it has expired".to_owned())
        } else {
            Ok(())
        }
    }

    /// Whether `signature` over `text` was made with this certificate's key.
    pub fn verifies(
        &self,
        algorithm: &'static RsaParameters,
        text: &[u8],
        signature: &[u8],
    ) -> bool {
        UnparsedPublicKey::new(algorithm, &self.public_key)
            .verify(text, signature)
            .is_ok()
    }
}

/// Fetches certificates and remembers the last [`CACHED`] that were usable.
#[derive(Debug)]
pub(super) struct CertCache {
    client: reqwest::Client,
    /// Oldest first. A lookup is a scan: the list is a handful long.
    entries: Mutex<VecDeque<(Url, Arc<SigningCert>)>>,
}

impl CertCache {
    pub fn new(client: reqwest::Client) -> Self {
        CertCache {
            client,
            entries: Mutex::new(VecDeque::with_capacity(CACHED)),
        }
    }

    /// The certificate at `url`, valid at `now`; fetched unless cached. Two requests that miss
    /// at once both fetch: harmless, and simpler than making one wait on the other.
    pub async fn get(&self, url: &Url, now: Timestamp) -> Result<Arc<SigningCert>, SnsHttpsError> {
        let cert = match self.cached(url) {
            Some(cert) => cert,
            None => self.fetch(url).await?,
        };
        cert.check_validity(now)
            .map_err(|reason| bad_certificate(url, reason))?;
        self.remember(url, &cert);
        Ok(cert)
    }

    fn cached(&self, url: &Url) -> Option<Arc<SigningCert>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let found = entries.iter().find(|(cached, _)| cached == url);
        found.map(|(_, cert)| Arc::clone(cert))
    }

    fn remember(&self, url: &Url, cert: &Arc<SigningCert>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.iter().any(|(cached, _)| cached == url) {
            return;
        }
        if entries.len() == CACHED {
            entries.pop_front();
        }
        entries.push_back((url.clone(), Arc::clone(cert)));
    }

    async fn fetch(&self, url: &Url) -> Result<Arc<SigningCert>, SnsHttpsError> {
        let pem = get_bounded(&self.client, url, MAX_CERT_BYTES)
            .await
            .map_err(|source| SnsHttpsError::CertificateFetch {
                url: url.to_string(),
                source,
            })?;
        tracing::debug!(url = %url, "fetched sns signing certificate");
        let cert = SigningCert::from_pem(&pem).map_err(|reason| bad_certificate(url, reason))?;
        Ok(Arc::new(cert))
    }
}

fn bad_certificate(url: &Url, reason: String) -> SnsHttpsError {
    SnsHttpsError::BadCertificate {
        url: url.to_string(),
        reason,
    }
}

/// GETs `url` and reads at most `limit` bytes of a 2xx answer.
pub(super) async fn get_bounded(
    client: &reqwest::Client,
    url: &Url,
    limit: usize,
) -> Result<Vec<u8>, FetchError> {
    let mut response = client
        .get(url.clone())
        .send()
        .await
        .map_err(FetchError::Request)?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(FetchError::Request)? {
        if body.len() + chunk.len() > limit {
            return Err(FetchError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
