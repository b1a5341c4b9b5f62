//! Which URLs in a message Herald may fetch: the signing certificate and the confirmation
//! link.
//!
//! Anyone can POST a message naming any `SigningCertURL`; a certificate from a host the sender
//! controls would "verify" whatever they signed. So a URL is fetched only when it is https on
//! an SNS regional endpoint, `sns.<region>.amazonaws.com` or `sns.<region>.amazonaws.com.cn`
//! (<https://docs.aws.amazon.com/general/latest/gr/sns.html>), where TLS proves who answers.
//!
//! Tests cannot sign as SNS, so [`UrlPolicy`] can also allow one test-only prefix. It is off
//! unless set, and [`UrlPolicy::new`] refuses any prefix whose host is not a loopback IP
//! literal: serving a certificate there takes a process on Herald's own machine.

use std::net::IpAddr;

use url::{Host, Url};

use super::error::{SetupError, SnsHttpsError};

/// SNS endpoint domains, after `sns.<region>.`.
const SNS_DOMAINS: [&str; 2] = [".amazonaws.com", ".amazonaws.com.cn"];

/// Decides which URLs may be fetched.
#[derive(Debug, Clone, Default)]
pub(super) struct UrlPolicy {
    /// The test-only prefix, checked to be on loopback.
    test_prefix: Option<Url>,
}

impl UrlPolicy {
    /// A policy allowing SNS hosts and, when given, URLs under `test_prefix`.
    pub fn new(test_prefix: Option<&str>) -> Result<Self, SetupError> {
        let test_prefix = test_prefix.map(loopback_prefix).transpose()?;
        Ok(UrlPolicy { test_prefix })
    }

    /// Whether the test-only prefix is in force (it may be plain http).
    pub fn allows_test_prefix(&self) -> bool {
        self.test_prefix.is_some()
    }

    /// Parses `url` from the message field `field` and checks it may be fetched.
    pub fn check(&self, field: &'static str, url: &str) -> Result<Url, SnsHttpsError> {
        let untrusted = || SnsHttpsError::untrusted_url(field, url);
        let parsed = Url::parse(url).map_err(|_| untrusted())?;
        if is_sns(&parsed) || self.is_under_test_prefix(&parsed) {
            Ok(parsed)
        } else {
            Err(untrusted())
        }
    }

    fn is_under_test_prefix(&self, url: &Url) -> bool {
        let Some(prefix) = &self.test_prefix else {
            return false;
        };
        // Compared part by part, never as text: "http://127.0.0.1" is a textual prefix of
        // "http://127.0.0.1.evil.example/".
        url.scheme() == prefix.scheme()
            && url.host() == prefix.host()
            && url.port_or_known_default() == prefix.port_or_known_default()
            && !has_credentials(url)
            && url.path().starts_with(prefix.path())
    }
}

/// Whether a URL is https on an SNS regional endpoint, default port, no credentials.
fn is_sns(url: &Url) -> bool {
    let Some(Host::Domain(host)) = url.host() else {
        return false;
    };
    url.scheme() == "https" && url.port().is_none() && !has_credentials(url) && is_sns_host(host)
}

/// `sns.<region>.amazonaws.com[.cn]`, the region being letters, digits and hyphens.
fn is_sns_host(host: &str) -> bool {
    let Some(rest) = host.strip_prefix("sns.") else {
        return false;
    };
    let region = SNS_DOMAINS
        .iter()
        .find_map(|domain| rest.strip_suffix(domain));
    region.is_some_and(|region| {
        !region.is_empty()
            && region
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
    })
}

fn has_credentials(url: &Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

/// Checks the test-only prefix: http(s), a loopback IP literal (a name could resolve
/// anywhere), no credentials, query or fragment, and a path ending in `/` so that it names a
/// folder, not the start of a file name.
fn loopback_prefix(prefix: &str) -> Result<Url, SetupError> {
    let refuse = |reason| SetupError::TestPrefix {
        prefix: prefix.to_owned(),
        reason,
    };
    let url = Url::parse(prefix).map_err(|_| refuse("not a url"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refuse("scheme is not http or https"));
    }
    let loopback = match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        _ => false,
    };
    if !loopback {
        return Err(refuse("host is not a loopback ip address"));
    }
    if has_credentials(&url) || url.query().is_some() || url.fragment().is_some() {
        return Err(refuse("has credentials, a query or a fragment"));
    }
    if !url.path().ends_with('/') {
        return Err(refuse("path does not end with '/'"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const CERT: &str = "SigningCertURL";

    #[test]
    fn sns_hosts_in_both_partitions_are_allowed() -> TestResult {
        let policy = UrlPolicy::default();
        for url in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
            "https://sns.us-gov-west-1.amazonaws.com/cert.pem",
            "https://SNS.EU-WEST-1.AMAZONAWS.COM/cert.pem",
            "https://sns.eu-west-1.amazonaws.com:443/cert.pem",
        ] {
            policy.check(CERT, url)?;
        }
        Ok(())
    }

    #[test]
    fn lookalike_and_insecure_urls_are_refused() {
        let policy = UrlPolicy::default();
        for url in [
            "https://evil.example.com/cert.pem",
            "http://sns.us-east-1.amazonaws.com/cert.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem",
            "https://sns.evil.example.amazonaws.com/cert.pem",
            "https://sns..amazonaws.com/cert.pem",
            "https://sns.amazonaws.com/cert.pem",
            "https://s3.us-east-1.amazonaws.com/cert.pem",
            "https://xsns.us-east-1.amazonaws.com/cert.pem",
            "https://sns.us-east-1.amazonaws.com:8443/cert.pem",
            "https://user@sns.us-east-1.amazonaws.com/cert.pem",
            "https://sns.us-east-1.amazonaws.com./cert.pem",
            "https://54.239.28.85/cert.pem",
            "http://127.0.0.1:8080/cert.pem",
            "file:///etc/passwd",
            "not a url",
        ] {
            let got = policy.check(CERT, url);
            assert!(
                matches!(got, Err(SnsHttpsError::UntrustedUrl { field: CERT, .. })),
                "{url}: {got:?}"
            );
        }
    }

    #[test]
    fn test_prefix_allows_only_what_lies_under_it() -> TestResult {
        let policy = UrlPolicy::new(Some("http://127.0.0.1:8080/sns/"))?;
        policy.check(CERT, "http://127.0.0.1:8080/sns/cert.pem")?;
        policy.check(CERT, "https://sns.us-east-1.amazonaws.com/cert.pem")?;
        for url in [
            "http://127.0.0.1:8081/sns/cert.pem",
            "http://127.0.0.1:8080/other/cert.pem",
            "https://127.0.0.1:8080/sns/cert.pem",
            "http://127.0.0.2:8080/sns/cert.pem",
            "http://user@127.0.0.1:8080/sns/cert.pem",
            "http://127.0.0.1:8080.evil.example/sns/cert.pem",
        ] {
            assert!(policy.check(CERT, url).is_err(), "{url}");
        }
        Ok(())
    }

    #[test]
    fn test_prefix_must_be_loopback() -> TestResult {
        UrlPolicy::new(Some("http://[::1]:9000/"))?;
        UrlPolicy::new(Some("https://127.0.0.53/certs/"))?;
        for prefix in [
            "http://localhost:8080/",
            "http://10.0.0.1:8080/",
            "http://0.0.0.0:8080/",
            "https://sns.us-east-1.amazonaws.com/",
            "http://127.0.0.1:8080/cert",
            "http://127.0.0.1:8080/?x=/",
            "ftp://127.0.0.1/",
            "127.0.0.1:8080/",
        ] {
            let got = UrlPolicy::new(Some(prefix));
            assert!(
                matches!(got, Err(SetupError::TestPrefix { .. })),
                "{prefix}: {got:?}"
            );
        }
        Ok(())
    }
}
