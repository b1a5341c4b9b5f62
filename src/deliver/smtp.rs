//! SMTP delivery through lettre: STARTTLS, implicit TLS or plain, optional auth, pooled
//! connections.
//!
//! Herald uses lettre's blocking transport on tokio's blocking threads rather than its async
//! one. The blocking transport times out every read and write on the socket, and a command
//! that fails or times out marks its connection broken so the pool never hands it out again.
//! The async transport (lettre 0.11) times out only the TCP connect; bounding a send from the
//! outside would cancel it mid-exchange and return a connection with an unread reply to the
//! pool, where the next send would read that stale reply as its own.
//!
//! lettre is built without its `tracing` feature, so its wire log (which would include the
//! base64 `AUTH` exchange) can never be switched on; this module logs what it needs itself.

use std::time::Duration;

use lettre::Transport as _;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::{PoolConfig, SmtpTransport, SmtpTransportBuilder};
use tracing::debug;

use super::{DeliveryError, Email, Receipt, SendFuture, Sender, message};
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

impl std::fmt::Display for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tls::None => "no TLS",
            Tls::StartTls => "STARTTLS",
            Tls::Implicit => "implicit TLS",
        })
    }
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

/// The name in receipts, errors and logs.
const NAME: &str = "smtp";

/// The SMTP transport could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SmtpSetupError {
    /// The TLS client for the server could not be configured (e.g. no usable root
    /// certificates on this machine).
    #[error("cannot configure tls for smtp server {host}")]
    Tls {
        host: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
}

/// Sends email through one SMTP server, reusing up to `pool_max` open connections.
pub struct SmtpSender {
    /// Cheap to clone: clones share one connection pool.
    transport: SmtpTransport,
    /// `host:port`, for logs.
    server: String,
}

impl SmtpSender {
    /// Builds the transport; connects lazily, on the first send. `timeout` bounds every read
    /// and write of the SMTP exchange.
    pub fn new(settings: &SmtpSettings) -> Result<SmtpSender, SmtpSetupError> {
        let mut builder = builder_for(settings)?
            .port(settings.port)
            .timeout(Some(settings.timeout))
            .pool_config(PoolConfig::new().max_size(settings.pool_max));
        if let Some((user, password)) = &settings.credentials {
            let password = password.expose().to_owned();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(SmtpSender {
            transport: builder.build(),
            server: format!("{}:{}", settings.host, settings.port),
        })
    }
}

/// The lettre builder for the chosen transport security.
fn builder_for(settings: &SmtpSettings) -> Result<SmtpTransportBuilder, SmtpSetupError> {
    type Transport = SmtpTransport;
    let host = settings.host.as_str();
    let tls_error = |source| SmtpSetupError::Tls {
        host: host.to_owned(),
        source,
    };
    match settings.tls {
        Tls::None => Ok(Transport::builder_dangerous(host)),
        // `starttls_relay` refuses to go on without STARTTLS, so a downgrade cannot expose
        // credentials or mail.
        Tls::StartTls => Transport::starttls_relay(host).map_err(tls_error),
        Tls::Implicit => Transport::relay(host).map_err(tls_error),
    }
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Sender for SmtpSender {
    fn name(&self) -> &'static str {
        NAME
    }

    fn send<'a>(&'a self, email: &'a Email) -> SendFuture<'a> {
        Box::pin(async move {
            let message = message::build(email)?;
            let transport = self.transport.clone();
            let sent = tokio::task::spawn_blocking(move || transport.send(&message)).await;
            let result = match sent {
                Ok(result) => result.map_err(classify),
                Err(join) => Err(send_task_failed(&join)),
            };
            match result {
                Ok(response) => {
                    let detail = response_text(&response);
                    debug!(server = %self.server, message_id = %email.message_id,
                        reply = %detail, "smtp server accepted message");
                    Ok(Receipt {
                        sender: NAME,
                        detail,
                    })
                }
                Err(err) => {
                    debug!(server = %self.server, message_id = %email.message_id,
                        transient = err.is_transient(), error = %err, "smtp send failed");
                    Err(err)
                }
            }
        })
    }
}

/// The blocking send task panicked or was cancelled at shutdown; whether the server took the
/// message is unknown, so a retry is the safe answer (dedupe keeps it from going twice).
fn send_task_failed(join: &tokio::task::JoinError) -> DeliveryError {
    DeliveryError::Transient {
        sender: NAME,
        reason: format!("the send did not finish: {join}"),
        source: None,
        retry_after: None,
    }
}

/// `250 2.0.0 Ok: queued as 4C1D2`: the reply code and every line of the server's text.
fn response_text(response: &Response) -> String {
    let lines: Vec<&str> = response.message().collect();
    format!("{} {}", response.code(), lines.join(" "))
}

/// Sorts a lettre error by whether sending again later can help.
///
/// 4xx replies, refused or dropped connections and timeouts are transient. 5xx replies are
/// permanent, and so are TLS failures (a certificate that does not match) and client errors
/// (the server lacks STARTTLS or a usable AUTH mechanism): those need an operator, not a retry.
fn classify(err: lettre::transport::smtp::Error) -> DeliveryError {
    let permanent = err.is_permanent() || err.is_tls() || err.is_client();
    let transient = err.is_transient() || err.is_timeout() || !permanent;
    // lettre's text already carries the code and the server's reply; the error itself is not
    // kept as a source because printing the chain would repeat that text.
    let reason = err.to_string();
    if transient {
        DeliveryError::Transient {
            sender: NAME,
            reason,
            source: None,
            retry_after: None,
        }
    } else {
        DeliveryError::Permanent {
            sender: NAME,
            reason,
            source: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;

    use super::*;
    use crate::deliver::message::tests::sample_email;

    /// A scripted SMTP server for one connection: answers each command, replying `rcpt_reply`
    /// to every `RCPT TO`, and returns everything the client sent.
    async fn fake_server(rcpt_reply: &'static str) -> (SocketAddr, JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let mut transcript = String::new();
            let mut in_data = false;
            write.write_all(b"220 fake ESMTP\r\n").await.expect("greet");
            while let Ok(Some(line)) = lines.next_line().await {
                transcript.push_str(&line);
                transcript.push('\n');
                let reply = reply_to(&line, &mut in_data, rcpt_reply);
                if let Some(reply) = reply {
                    write.write_all(reply.as_bytes()).await.expect("reply");
                }
                if line.eq_ignore_ascii_case("QUIT") {
                    break;
                }
            }
            transcript
        });
        (addr, task)
    }

    fn reply_to(line: &str, in_data: &mut bool, rcpt_reply: &'static str) -> Option<&'static str> {
        if *in_data {
            *in_data = line != ".";
            return (!*in_data).then_some("250 2.0.0 Ok: queued as 4C1D2\r\n");
        }
        let verb = line
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        Some(match verb.as_str() {
            "EHLO" => "250-fake\r\n250 8BITMIME\r\n",
            "RCPT" => rcpt_reply,
            "DATA" => {
                *in_data = true;
                "354 go ahead\r\n"
            }
            "QUIT" => "221 bye\r\n",
            _ => "250 ok\r\n",
        })
    }

    fn settings(addr: SocketAddr) -> SmtpSettings {
        SmtpSettings {
            host: addr.ip().to_string(),
            port: addr.port(),
            tls: Tls::None,
            credentials: None,
            timeout: Duration::from_secs(5),
            pool_max: 2,
        }
    }

    #[tokio::test]
    async fn accepted_message_reports_the_server_reply() {
        let (addr, server) = fake_server("250 ok\r\n").await;
        let sender = SmtpSender::new(&settings(addr)).expect("sender");

        let receipt = sender
            .send(&sample_email(Some("<p>hi</p>")))
            .await
            .expect("sent");
        assert_eq!(receipt.sender, "smtp");
        assert_eq!(receipt.detail, "250 2.0.0 Ok: queued as 4C1D2");

        drop(sender);
        let transcript = server.await.expect("server");
        assert!(transcript.contains("RCPT TO:<secret-watcher@example.com>"));
        assert!(transcript.contains("X-Herald-Rule: contracts"));
        assert!(!transcript.to_ascii_lowercase().contains("\nbcc:"));
    }

    #[tokio::test]
    async fn rejected_recipient_is_permanent() {
        let (addr, _server) = fake_server("550 5.1.1 no such user\r\n").await;
        let sender = SmtpSender::new(&settings(addr)).expect("sender");

        let err = sender
            .send(&sample_email(None))
            .await
            .expect_err("rejected");
        assert!(!err.is_transient());
        assert!(err.to_string().contains("550"), "{err}");
    }

    #[tokio::test]
    async fn greylisted_recipient_is_transient() {
        let (addr, _server) = fake_server("451 4.7.1 try again later\r\n").await;
        let sender = SmtpSender::new(&settings(addr)).expect("sender");

        let err = sender
            .send(&sample_email(None))
            .await
            .expect_err("deferred");
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains("451"), "{err}");
    }

    #[tokio::test]
    async fn refused_connection_is_transient() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let sender = SmtpSender::new(&settings(addr)).expect("sender");

        let err = sender.send(&sample_email(None)).await.expect_err("refused");
        assert!(err.is_transient(), "{err}");
    }

    #[tokio::test]
    async fn silent_server_times_out_as_transient() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut settings = settings(listener.local_addr().expect("addr"));
        settings.timeout = Duration::from_millis(200);
        let sender = SmtpSender::new(&settings).expect("sender");

        let err = sender
            .send(&sample_email(None))
            .await
            .expect_err("timed out");
        assert!(err.is_transient(), "{err}");
        drop(listener);
    }

    #[tokio::test]
    async fn a_timed_out_send_never_lends_its_reply_to_the_next_one() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut settings = settings(listener.local_addr().expect("addr"));
        settings.timeout = Duration::from_millis(300);
        tokio::spawn(late_then_rejecting_server(listener));
        let sender = SmtpSender::new(&settings).expect("sender");

        let first = sender
            .send(&sample_email(None))
            .await
            .expect_err("times out");
        assert!(first.is_transient(), "{first}");
        // The server now answers the first message late and refuses every recipient: the
        // second send must see its own 550, not the first message's late 250.
        let second = sender.send(&sample_email(None)).await.expect_err("refused");
        assert!(!second.is_transient(), "{second}");
    }

    /// Answers the first message's end of data a second late, then refuses every recipient.
    /// Each connection is served on its own task, as a real server would.
    async fn late_then_rejecting_server(listener: TcpListener) {
        let messages = Arc::new(AtomicUsize::new(0));
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(late_then_rejecting_connection(
                stream,
                Arc::clone(&messages),
            ));
        }
    }

    async fn late_then_rejecting_connection(stream: TcpStream, messages: Arc<AtomicUsize>) {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let _ = write.write_all(b"220 fake ESMTP\r\n").await;
        let mut in_data = false;
        while let Ok(Some(line)) = lines.next_line().await {
            let first = messages.load(Ordering::SeqCst) == 0;
            let rcpt = if first {
                "250 ok\r\n"
            } else {
                "550 5.1.1 no such user\r\n"
            };
            let ending = in_data && line == ".";
            let reply = reply_to(&line, &mut in_data, rcpt);
            if ending && messages.fetch_add(1, Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            if let Some(reply) = reply {
                let _ = write.write_all(reply.as_bytes()).await;
            }
        }
    }

    #[tokio::test]
    async fn debug_output_hides_credentials() {
        let mut settings = settings("127.0.0.1:25".parse().expect("addr"));
        settings.credentials = Some(("user".into(), Secret::new("hunter2")));
        let sender = SmtpSender::new(&settings).expect("sender");
        assert!(!format!("{sender:?} {settings:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn tls_modes_build() {
        for tls in [Tls::None, Tls::StartTls, Tls::Implicit] {
            let mut settings = settings("127.0.0.1:25".parse().expect("addr"));
            settings.host = "mail.example.com".into();
            settings.tls = tls;
            SmtpSender::new(&settings).expect("builds");
        }
    }
}
