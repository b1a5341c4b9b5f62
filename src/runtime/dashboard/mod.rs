//! The local dashboard of `herald dev` and `herald serve`: recent uploads, each upload's trace,
//! its emails as the recipients see them, the dead letters with Replay and Drop buttons, and
//! bar charts of uploads and deliveries over the last hour.
//!
//! Server-rendered HTML (axum and minijinja, templates beside this file), on a listener of its
//! own so it never shares a port with the S3 endpoint or the event receiver. Every value from
//! an upload (keys, names, subjects, bodies) is data: templates auto-escape, an email's HTML is
//! shown in an `<iframe sandbox>` that may run no script, and every page carries a strict
//! `Content-Security-Policy` with no script allowed at all. The dashboard has no login: it
//! listens on loopback unless the config says otherwise, refuses requests whose `Host` is not a
//! loopback name while it does (DNS rebinding), and refuses cross-site form posts ([`guard`]).
//!
//! | route | what it shows |
//! | --- | --- |
//! | `GET /` | recent uploads, newest first, `?status=` filters; the charts |
//! | `GET /events/{id}` | one upload's trace |
//! | `GET /events/{id}/emails/{n}` | the `n`th email rendered for it |
//! | `GET /dead-letters` | parked notifications |
//! | `POST /dead-letters/{id}/replay`, `.../drop` | replay or drop one |

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{info, warn};

mod chart;
mod guard;
mod pages;
mod router;
mod state;
#[cfg(test)]
mod tests;
mod view;

pub use router::router;
pub use state::{DashboardState, SetupError};

/// Where the dashboard listens when neither a flag nor the config says: loopback only.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9001);

/// How long shutdown waits for open pages' connections before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The checked `[dashboard]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DashboardSettings {
    /// Whether `herald serve` runs the dashboard.
    pub enabled: bool,
    /// `[dashboard] listen`, when set.
    pub listen: Option<SocketAddr>,
}

/// The dashboard's address could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// `--dashboard` named an address other machines could reach.
    #[error(
        "--dashboard {addr} is not a loopback address; a dashboard other machines can reach \
         must be set in the config ([dashboard] listen)"
    )]
    NotLoopback {
        /// The address given.
        addr: SocketAddr,
    },
}

/// Picks the address: `--dashboard` (loopback only), else `[dashboard] listen`, else
/// [`DEFAULT_LISTEN`].
pub fn listen_address(
    flag: Option<SocketAddr>,
    settings: &DashboardSettings,
) -> Result<SocketAddr, AddressError> {
    match flag {
        Some(addr) if !addr.ip().is_loopback() => Err(AddressError::NotLoopback { addr }),
        Some(addr) => Ok(addr),
        None => Ok(settings.listen.unwrap_or(DEFAULT_LISTEN)),
    }
}

/// A bound dashboard listener, ready to [`run`](Dashboard::run). Bound before the rest starts,
/// so the banner can print its address.
#[derive(Debug)]
pub struct Dashboard {
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl Dashboard {
    /// Binds `addr`; port 0 picks a free one.
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(Dashboard {
            listener,
            local_addr,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL to open in a browser.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Serves `state` on a task of its own until [`RunningDashboard::stop`].
    pub fn spawn(self, state: DashboardState) -> RunningDashboard {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.run(state, async {
            // A dropped handle also means stop.
            let _ = stopped.await;
        }));
        RunningDashboard { stop, task }
    }

    /// Serves `state` until `shutdown` resolves, then waits a bounded time for open requests.
    pub async fn run(
        self,
        state: DashboardState,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let state = state.loopback(self.local_addr.ip().is_loopback());
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        };
        info!(address = %self.local_addr, "dashboard listening");
        let server = axum::serve(self.listener, router(state)).with_graceful_shutdown(shutdown);
        let server = server.into_future();
        tokio::pin!(server);
        let result = tokio::select! {
            result = &mut server => result,
            // Browsers keep connections open; past the grace period they are dropped.
            () = after_stop(stopping_rx) => Ok(()),
        };
        if let Err(err) = result {
            warn!(error = %err, "dashboard server failed");
        }
        info!(address = %self.local_addr, "dashboard stopped");
    }
}

/// A dashboard serving on its own task.
#[derive(Debug)]
pub struct RunningDashboard {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningDashboard {
    /// Stops it, waiting a bounded time for requests in flight.
    pub async fn stop(self) {
        // An error means the task already ended, which is what we want.
        let _ = self.stop.send(());
        if let Err(err) = self.task.await {
            warn!(error = %err, "dashboard task failed");
        }
    }
}

/// Resolves [`SHUTDOWN_GRACE`] after the stop signal; never when the signal is never sent.
async fn after_stop(stopping: tokio::sync::oneshot::Receiver<()>) {
    if stopping.await.is_err() {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(SHUTDOWN_GRACE).await;
}
