//! SMTP delivery: STARTTLS, implicit TLS or plain, optional auth, pooled connections.
//!
//! Herald opens its own TCP sockets and hands them to lettre's `AsyncSmtpConnection`, which
//! speaks the protocol. Owning the socket lets us set `TCP_NODELAY`: lettre writes a message
//! body and its closing `.` in two writes, and with Nagle's algorithm on, the second waits
//! for the server's delayed ACK (40 ms on Linux), which capped a connection at about 25
//! messages a second.
//!
//! Owning the socket means owning the pool too. lettre's async transport times out only the
//! TCP connect, and bounding its send from the outside would cancel an exchange halfway and
//! hand the connection, with a reply still unread, to the next send, which would take that
//! stale reply for its own. Here every step (connect, TLS handshake, greeting and EHLO,
//! STARTTLS, AUTH, the NOOP that checks an idle connection, the send) runs under the
//! configured timeout, and a connection goes back to the pool only after a step that
//! finished cleanly. One that failed or timed out is dropped, closing its socket.
//!
//! lettre is built without its `tracing` feature, so its wire log (which would include the
//! base64 `AUTH` exchange) can never be switched on; this module logs what it needs itself.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use futures::io::{AsyncRead as _, AsyncWrite as _};
use lettre::address::Envelope;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use tokio::io::ReadBuf;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
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

/// How long an unused connection stays in the pool. Servers drop idle clients after a few
/// minutes (RFC 5321 section 4.5.3.2.7 suggests five); a minute, lettre's own default, keeps
/// bursts on warm connections without holding sockets the server is about to close.
const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// The SMTP transport could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SmtpSetupError {
    /// The TLS client for the server could not be configured (e.g. no usable root
    /// certificates on this machine).
    #[error("cannot configure tls for smtp server {host}")]
    Tls {
        host: String,
        #[source]
        source: SmtpError,
    },
}

/// Sends email through one SMTP server, reusing up to `pool_max` open connections.
pub struct SmtpSender {
    host: String,
    port: u16,
    /// `host:port`, for logs and errors.
    server: String,
    security: Security,
    credentials: Option<Credentials>,
    /// The name sent with `EHLO`: this machine's host name.
    hello: ClientId,
    /// Bounds each step of the exchange.
    timeout: Duration,
    pool: Pool,
}

/// The transport security with what it needs to run.
enum Security {
    Plain,
    StartTls(TlsParameters),
    Implicit(TlsParameters),
}

impl SmtpSender {
    /// Prepares the sender; connects lazily, on the first send. `timeout` bounds every step
    /// of the SMTP exchange.
    pub fn new(settings: &SmtpSettings) -> Result<SmtpSender, SmtpSetupError> {
        let credentials = settings
            .credentials
            .as_ref()
            .map(|(user, password)| Credentials::new(user.clone(), password.expose().to_owned()));
        Ok(SmtpSender {
            host: settings.host.clone(),
            port: settings.port,
            server: format!("{}:{}", settings.host, settings.port),
            security: security_for(settings)?,
            credentials,
            hello: ClientId::default(),
            timeout: settings.timeout,
            pool: Pool::new(settings.pool_max),
        })
    }

    /// Delivers one message on a pooled or new connection, returning the connection to the
    /// pool only when the send finished cleanly.
    async fn deliver(&self, envelope: &Envelope, body: &[u8]) -> Result<Response, DeliveryError> {
        let _permit = self
            .pool
            .permits
            .acquire()
            .await
            .map_err(|_| pool_closed())?;
        let mut connection = self.checkout().await?;
        let sent = self.bounded("send", connection.send(envelope, body)).await;
        // A rejected recipient makes lettre abort the connection, so check it is still whole.
        if sent.is_ok() && !connection.has_broken() {
            self.pool.put_back(connection);
        }
        sent
    }

    /// An idle connection that still answers `NOOP`, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, DeliveryError> {
        while let Some(mut connection) = self.pool.take_idle() {
            let alive = tokio::time::timeout(self.timeout, connection.test_connected()).await;
            if matches!(alive, Ok(true)) {
                return Ok(connection);
            }
            debug!(server = %self.server, "smtp idle connection is gone, dropping it");
        }
        self.connect().await
    }

    /// Opens a connection: TCP with `TCP_NODELAY`, TLS as configured, then `AUTH`.
    async fn connect(&self) -> Result<AsyncSmtpConnection, DeliveryError> {
        let (tcp, peer) = self.open_socket().await?;
        let stream: Box<dyn AsyncTokioStream> = match &self.security {
            Security::Implicit(tls) => {
                let handshake = ImplicitTls::handshake(tcp, peer, tls.clone());
                Box::new(self.bounded("tls handshake", handshake).await?)
            }
            Security::Plain | Security::StartTls(_) => Box::new(tcp),
        };
        let greeting = AsyncSmtpConnection::connect_with_transport(stream, &self.hello);
        let mut connection = self.bounded("greeting and ehlo", greeting).await?;

        if let Security::StartTls(tls) = &self.security {
            // `starttls` fails when the server does not offer it: never fall back to plain.
            let upgrade = connection.starttls(tls.clone(), &self.hello);
            self.bounded("starttls", upgrade).await?;
        }
        if let Some(credentials) = &self.credentials {
            self.bounded("auth", connection.auth(DEFAULT_MECHANISMS, credentials))
                .await?;
        }
        debug!(server = %self.server, "smtp connection opened");
        Ok(connection)
    }

    /// Connects the TCP socket within the timeout and turns Nagle's algorithm off.
    async fn open_socket(&self) -> Result<(TcpStream, SocketAddr), DeliveryError> {
        let connect = TcpStream::connect((self.host.as_str(), self.port));
        let tcp = match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(err)) => return Err(self.connection_trouble("cannot connect", err)),
            Err(_) => return Err(self.timed_out("connect")),
        };
        let configured = tcp.set_nodelay(true).and_then(|()| tcp.peer_addr());
        let peer = configured.map_err(|err| self.connection_trouble("cannot set up", err))?;
        Ok((tcp, peer))
    }

    /// Runs one step of the exchange under the timeout, sorting its error.
    async fn bounded<T>(
        &self,
        step: &'static str,
        future: impl Future<Output = Result<T, SmtpError>>,
    ) -> Result<T, DeliveryError> {
        match tokio::time::timeout(self.timeout, future).await {
            Ok(result) => result.map_err(classify),
            Err(_) => Err(self.timed_out(step)),
        }
    }

    fn timed_out(&self, step: &'static str) -> DeliveryError {
        DeliveryError::Transient {
            sender: NAME,
            reason: format!(
                "smtp server {} did not finish {step} within {:?}",
                self.server, self.timeout
            ),
            source: None,
            retry_after: None,
        }
    }

    fn connection_trouble(&self, what: &'static str, err: io::Error) -> DeliveryError {
        DeliveryError::Transient {
            sender: NAME,
            reason: format!("{what} connection to smtp server {}", self.server),
            source: Some(Box::new(err)),
            retry_after: None,
        }
    }
}

/// lettre's TLS parameters for the chosen transport security.
fn security_for(settings: &SmtpSettings) -> Result<Security, SmtpSetupError> {
    let tls = || {
        TlsParameters::new(settings.host.clone()).map_err(|source| SmtpSetupError::Tls {
            host: settings.host.clone(),
            source,
        })
    };
    Ok(match settings.tls {
        Tls::None => Security::Plain,
        Tls::StartTls => Security::StartTls(tls()?),
        Tls::Implicit => Security::Implicit(tls()?),
    })
}

/// The semaphore never closes; if it somehow did, a retry is the safe answer.
fn pool_closed() -> DeliveryError {
    DeliveryError::Transient {
        sender: NAME,
        reason: "the smtp connection pool is closed".to_owned(),
        source: None,
        retry_after: None,
    }
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// Open connections: a send holds one of `pool_max` permits while it uses a connection, so
/// no more than `pool_max` are ever open, idle ones included.
struct Pool {
    permits: Semaphore,
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    connection: AsyncSmtpConnection,
    since: Instant,
}

impl Pool {
    fn new(max: u32) -> Pool {
        let max = usize::try_from(max.max(1)).unwrap_or(1);
        Pool {
            permits: Semaphore::new(max),
            idle: Mutex::new(Vec::with_capacity(max)),
        }
    }

    /// The most recently used idle connection, dropping those idle past [`IDLE_LIMIT`].
    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        // A panic while holding this lock cannot leave the list half-changed.
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|entry| entry.since.elapsed() < IDLE_LIMIT);
        idle.pop().map(|entry| entry.connection)
    }

    fn put_back(&self, connection: AsyncSmtpConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.push(Idle {
            connection,
            since: Instant::now(),
        });
    }
}

/// A socket wrapped in TLS from the first byte, in the form lettre takes.
///
/// lettre can wrap an existing socket in TLS only through `AsyncNetworkStream` (public but
/// deprecated in 0.11, with no replacement), whose I/O traits are the `futures` ones; this
/// adapts them to tokio's. Using lettre's wrapping keeps one TLS setup (roots, crypto
/// provider, name check) for implicit TLS and STARTTLS alike.
#[derive(Debug)]
#[allow(deprecated)]
struct ImplicitTls {
    stream: lettre::transport::smtp::client::AsyncNetworkStream,
    peer: SocketAddr,
}

impl ImplicitTls {
    #[allow(deprecated)]
    async fn handshake(
        tcp: TcpStream,
        peer: SocketAddr,
        tls: TlsParameters,
    ) -> Result<ImplicitTls, SmtpError> {
        use lettre::transport::smtp::client::AsyncNetworkStream;
        let mut stream = AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
        stream.upgrade_tls(tls).await?;
        Ok(ImplicitTls { stream, peer })
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }
}

impl tokio::io::AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let read = ready!(Pin::new(&mut self.stream).poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(read);
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_close(cx)
    }
}

impl Sender for SmtpSender {
    fn name(&self) -> &'static str {
        NAME
    }

    fn send<'a>(&'a self, email: &'a Email) -> SendFuture<'a> {
        Box::pin(async move {
            let message = message::build(email)?;
            let result = self.deliver(message.envelope(), &message.formatted()).await;
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
fn classify(err: SmtpError) -> DeliveryError {
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
    async fn concurrent_sends_share_the_pooled_connection() {
        // The fake server accepts a single connection, so every send must go over it.
        let (addr, server) = fake_server("250 ok\r\n").await;
        let mut settings = settings(addr);
        settings.pool_max = 1;
        let sender = SmtpSender::new(&settings).expect("sender");

        let email = sample_email(None);
        let sends = futures::future::join_all((0..3).map(|_| sender.send(&email))).await;
        for sent in sends {
            sent.expect("sent over the one connection");
        }

        drop(sender);
        let transcript = server.await.expect("server");
        assert_eq!(transcript.matches("EHLO").count(), 1, "{transcript}");
        assert_eq!(transcript.matches("\nDATA\n").count(), 3, "{transcript}");
        assert!(transcript.contains("NOOP"), "{transcript}");
    }

    #[tokio::test]
    async fn sockets_are_opened_with_nagle_off() {
        // With Nagle's algorithm on, the closing `.` of every message waits for the server's
        // delayed ACK (40 ms on Linux); a property of the socket, so checked on the socket.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let sender = SmtpSender::new(&settings(listener.local_addr().expect("addr")));
        let (tcp, _) = sender
            .expect("sender")
            .open_socket()
            .await
            .expect("connects");
        assert!(tcp.nodelay().expect("readable option"));
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
