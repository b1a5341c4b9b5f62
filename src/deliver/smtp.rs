//! SMTP delivery through lettre: STARTTLS, implicit TLS or plain, optional auth, pooled
//! connections.

use std::time::Duration;

use crate::secret::Secret;

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Plain text; only sensible on loopback or inside a trusted network.
    None,
    /// Connect in plain text, then upgrade with `STARTTLS` (required, not opportunistic).
    StartTls,
    /// TLS from the first byte (`smtps://`, usually port 465).
    Implicit,
}

/// Everything needed to build an [`SmtpSender`]; produced by config validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// Server host name or IP address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Transport security.
    pub tls: Tls,
    /// User name and password, read from the environment at start-up.
    pub credentials: Option<(String, Secret)>,
    /// Per-command timeout.
    pub timeout: Duration,
    /// Most connections kept open at once.
    pub pool_max: u32,
}
