//! What keeps the dashboard to the person at this machine's browser: security headers on every
//! answer, loopback `Host` names only while listening on loopback, and same-origin form posts
//! carrying the process's token.
//!
//! A page on another site can make the browser post a form to `127.0.0.1`, and a rebound DNS
//! name can make the browser treat `127.0.0.1` as that site; the checks here refuse both.
//! <https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Sec-Fetch-Site>

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use subtle::ConstantTimeEq as _;

use super::state::DashboardState;

/// No scripts, no plugins, nothing fetched from elsewhere. Inline styles are allowed because
/// the emails shown in the sandboxed frame (which inherits this policy) are styled inline;
/// images from other hosts stay blocked, so viewing an email loads no tracking pixel.
const POLICY: &str = "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                      form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every answer, after refusing foreign `Host` names.
pub(super) async fn headers(
    State(state): State<DashboardState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = match host_allowed(&state, request.headers()) {
        true => next.run(request).await,
        false => (
            StatusCode::MISDIRECTED_REQUEST,
            "this dashboard answers only to loopback names",
        )
            .into_response(),
    };
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_SECURITY_POLICY, POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Not `no-referrer`: under it browsers post forms with `Origin: null`, which the post
        // check has to refuse. `same-origin` still tells no other site where the user was.
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// While on loopback, only `localhost` and loopback addresses (any port) may be the `Host`.
fn host_allowed(state: &DashboardState, headers: &HeaderMap) -> bool {
    if !state.loopback {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    is_loopback_host(host)
}

/// `localhost`, `127.x.x.x` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Why a form post was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum Refused {
    /// The browser says the post came from another site.
    #[error("the request came from another site (Sec-Fetch-Site: {0})")]
    CrossSite(&'static str),
    /// The `Origin` is not this dashboard.
    #[error("the request's Origin is not this dashboard")]
    Origin,
    /// The form's token is missing or wrong.
    #[error("the form's token is missing or out of date: reload the page and try again")]
    Token,
}

/// Accepts a post only when the browser does not call it cross-site, its `Origin` (when sent)
/// is this dashboard, and it carries the token.
pub(super) fn check_post(
    state: &DashboardState,
    headers: &HeaderMap,
    token: &str,
) -> Result<(), Refused> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
    {
        let site = match site {
            "same-site" => "same-site",
            "none" => "none",
            _ => "cross-site",
        };
        return Err(Refused::CrossSite(site));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let expected = host.map(|host| format!("http://{host}"));
        if expected.as_deref().map(str::as_bytes) != Some(origin.as_bytes()) {
            return Err(Refused::Origin);
        }
    }
    match bool::from(token.as_bytes().ct_eq(state.token.as_bytes())) {
        true => Ok(()),
        false => Err(Refused::Token),
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_loopback_names_pass() {
        for host in [
            "localhost:9001",
            "127.0.0.1:9001",
            "127.0.0.1",
            "[::1]:9001",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example:9001",
            "10.0.0.1:9001",
            "[::2]:1",
            "localhost.evil.example",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
