//! A sender that keeps emails in memory: for tests, and for runtimes that want to look at what
//! would have been sent.

use std::sync::Mutex;

use super::{Email, Receipt, SendFuture, Sender};

/// Keeps every email it is given, in order.
#[derive(Debug, Default)]
pub struct MemorySender {
    sent: Mutex<Vec<Email>>,
}

impl MemorySender {
    /// An empty sender.
    pub fn new() -> Self {
        MemorySender::default()
    }

    /// The emails sent so far.
    pub fn sent(&self) -> Vec<Email> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Sender for MemorySender {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn send<'a>(&'a self, email: &'a Email) -> SendFuture<'a> {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.push(email.clone());
        let detail = format!("kept as email {}", sent.len());
        Box::pin(async move {
            Ok(Receipt {
                sender: "memory",
                detail,
            })
        })
    }
}

/// A sender that refuses every email, for now (`transient`) or for good: for tests of what
/// the stages after delivery do with failures.
#[cfg(test)]
pub(crate) struct Refusing {
    pub(crate) transient: bool,
}

#[cfg(test)]
impl Sender for Refusing {
    fn name(&self) -> &'static str {
        "refusing"
    }

    fn send<'a>(&'a self, _: &'a Email) -> SendFuture<'a> {
        let (sender, reason) = ("refusing", "550 mailbox unavailable".to_owned());
        let err = match self.transient {
            true => super::DeliveryError::Transient {
                sender,
                reason,
                source: None,
                retry_after: None,
            },
            false => super::DeliveryError::Permanent {
                sender,
                reason,
                source: None,
            },
        };
        Box::pin(async move { Err(err) })
    }
}
