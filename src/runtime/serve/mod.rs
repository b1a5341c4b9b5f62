//! `herald serve`: an HTTP receiver for events that platforms push, one route per protocol,
//! all ending in the same pipeline.
//!
//! | route | who posts to it |
//! | --- | --- |
//! | `POST /cloudevents` | Eventarc (Cloud Storage to Cloud Run), Knative, CloudEvents 1.0 |
//! | `POST /pubsub` | Pub/Sub push subscriptions of Cloud Storage notifications |
//! | `POST /eventgrid` | Azure Event Grid, Event Grid or CloudEvents schema |
//! | `POST /minio` | MinIO and other S3-compatible servers' webhooks |
//! | `POST /sns` | SNS HTTPS subscriptions, signatures checked before anything is trusted |
//! | `OPTIONS /eventgrid`, `OPTIONS /cloudevents` | the CloudEvents abuse-protection handshake |
//! | `GET /healthz` | load balancers and orchestrators |
//!
//! Status codes tell each platform whether to retry (see [`reply`]): a payload Herald cannot
//! read is a 400, a delivery that may succeed later a 503, and a permanent failure whatever
//! makes that platform stop retrying or dead-letter the event.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;
use tokio::net::TcpListener;

use crate::secret::Secret;

mod azure;
mod google;
mod minio;
mod reply;
mod router;
mod sns;
mod state;
#[cfg(test)]
mod tests;

pub use router::router;
pub use state::AppState;

/// Where `herald serve` listens when nothing else says: loopback, so a first try exposes
/// nothing.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// The default request body limit: 1 MiB, the most Event Grid puts in one delivery; a
/// storage event is a few kilobytes.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// The smallest body limit a config may set; below it real events would be refused.
pub const MIN_BODY_LIMIT: usize = 1024;

/// The largest body limit a config may set, so a burst of big requests stays bounded.
pub const MAX_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// The checked `[serve]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSettings {
    /// `[serve] listen`, when set.
    pub listen: Option<SocketAddr>,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// The exact `Authorization` value `POST /minio` requires; `None` accepts any caller.
    pub minio_token: Option<Secret>,
    /// SNS topics `POST /sns` accepts; empty refuses every SNS message.
    pub sns_topics: Vec<String>,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            listen: None,
            body_limit: DEFAULT_BODY_LIMIT,
            minio_token: None,
            sns_topics: Vec::new(),
        }
    }
}

/// The listen address could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// `PORT` is set but is not a port number.
    #[error("environment variable PORT is {value:?}, expected a port number")]
    BadPort {
        /// What it held, cut short.
        value: String,
    },
}

/// Picks the address: `--listen`, else `0.0.0.0:$PORT` when `PORT` is set (Cloud Run and
/// other container platforms set it and route to every interface), else `[serve] listen`,
/// else [`DEFAULT_LISTEN`].
pub fn listen_address(
    flag: Option<SocketAddr>,
    port: Option<&str>,
    configured: Option<SocketAddr>,
) -> Result<SocketAddr, ListenError> {
    if let Some(addr) = flag {
        return Ok(addr);
    }
    if let Some(port) = port.filter(|port| !port.is_empty()) {
        let port: u16 = port.parse().map_err(|_| ListenError::BadPort {
            value: port.chars().take(20).collect(),
        })?;
        return Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)));
    }
    Ok(configured.unwrap_or(DEFAULT_LISTEN))
}

/// A bound receiver, ready to [`run`](Receiver::run).
pub struct Receiver {
    listener: TcpListener,
    router: Router,
}

impl Receiver {
    /// Binds `addr` (port 0 picks a free one) and builds the routes.
    pub async fn bind(addr: SocketAddr, state: AppState, body_limit: usize) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Receiver {
            listener,
            router: router(state, body_limit),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting connections and returns once
    /// the requests in flight are answered, so their events are handled to the end.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}
