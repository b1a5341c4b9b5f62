//! The embedded S3-compatible endpoint behind `herald dev` and `herald demo`.
//!
//! A directory served over the S3 wire protocol by s3s-fs: each bucket is a folder under the
//! data directory, each object a file. Any S3 client (aws cli, boto3, rclone, the SDKs) can
//! talk to it with path-style addressing and the fixed dev credentials below, and every upload
//! (put, copy, completed multipart) becomes an [`ObjectCreated`] on a channel, as if S3 had
//! sent an event notification.

mod limits;
mod notify;
#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s_fs::FileSystem;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::event::ObjectCreated;
use crate::queue::Inbox;
use notify::{ClientAddr, NotifyingFs};

/// Access key every dev client uses; it is also reported as the uploader of each event.
pub const DEV_ACCESS_KEY: &str = "herald-dev";

/// Secret key matching [`DEV_ACCESS_KEY`]; public by design, the endpoint is for local use.
pub const DEV_SECRET_KEY: &str = "herald-dev-secret";

/// Region clients sign for and events report.
pub const DEV_REGION: &str = "us-east-1";

/// How long shutdown waits for in-flight requests before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Pause after a failed accept, so a persistent failure (out of file descriptors) does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Where the endpoint puts each upload's event.
#[derive(Debug, Clone)]
pub enum Uploads {
    /// Hands events to a task in this process; a full channel slows the uploading client down
    /// rather than losing the event. An event still in the channel when the process dies is
    /// lost.
    Channel(mpsc::Sender<ObjectCreated>),
    /// Writes each event to the durable queue before the S3 request is answered; when that
    /// fails the client gets `503 SlowDown` and retries the upload.
    Queue(Inbox),
}

impl From<mpsc::Sender<ObjectCreated>> for Uploads {
    fn from(channel: mpsc::Sender<ObjectCreated>) -> Self {
        Uploads::Channel(channel)
    }
}

/// Where and what the dev endpoint serves.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// Address to listen on; port 0 picks a free port (see [`DevEndpoint::local_addr`]).
    pub listen: SocketAddr,
    /// Directory holding the buckets, created if missing.
    pub data_dir: PathBuf,
    /// Buckets created at start if missing; clients may create more.
    pub buckets: Vec<String>,
}

/// Why the dev endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// A configured bucket name is not a valid S3 bucket name.
    #[error("invalid bucket name {bucket:?}")]
    InvalidBucket {
        /// The rejected name.
        bucket: String,
    },
    /// The data directory or a bucket folder could not be created.
    #[error("cannot create directory {}", path.display())]
    CreateDir {
        /// The directory that could not be created.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// s3s-fs refused the data directory.
    #[error("cannot serve data directory {}", path.display())]
    DataDir {
        /// The data directory.
        path: PathBuf,
        /// s3s-fs's error, as an S3 error since its own type implements no `Error`.
        #[source]
        source: s3s::S3Error,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
}

/// A running dev endpoint; stops when [`shutdown`](DevEndpoint::shutdown) is called or when
/// dropped (then without waiting for in-flight requests).
#[derive(Debug)]
pub struct DevEndpoint {
    local_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

impl DevEndpoint {
    /// Creates the data directory and buckets, binds the listener and starts serving.
    ///
    /// Each upload's event goes to `events` (see [`Uploads`]).
    pub async fn start(
        options: DevOptions,
        events: impl Into<Uploads>,
    ) -> Result<DevEndpoint, DevError> {
        let events = events.into();
        create_buckets(&options.data_dir, &options.buckets).await?;
        let service = s3_service(&options.data_dir, events)?;
        let listener = TcpListener::bind(options.listen)
            .await
            .map_err(|source| bind_error(options.listen, source))?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| bind_error(options.listen, source))?;

        let (stop, stopped) = oneshot::channel();
        let server = tokio::spawn(serve(listener, service, stopped));
        info!(address = %local_addr, access_key = DEV_ACCESS_KEY, region = DEV_REGION,
            "dev endpoint listening");
        Ok(DevEndpoint {
            local_addr,
            stop,
            server,
        })
    }

    /// The address actually bound, with the chosen port when the options said port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL to give S3 clients, e.g. `http://127.0.0.1:9000`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Stops accepting connections and waits (a bounded time) for in-flight requests.
    pub async fn shutdown(self) {
        // An error means the server task already ended, which is what we want.
        let _ = self.stop.send(());
        if let Err(err) = self.server.await {
            warn!(error = %err, "dev endpoint task failed");
        }
        info!(address = %self.local_addr, "dev endpoint stopped");
    }
}

fn bind_error(addr: SocketAddr, source: io::Error) -> DevError {
    DevError::Bind { addr, source }
}

/// Makes a folder per bucket, which is all a bucket is to s3s-fs.
async fn create_buckets(data_dir: &Path, buckets: &[String]) -> Result<(), DevError> {
    create_dir(data_dir).await?;
    for bucket in buckets {
        // The name becomes a path component: validating it also keeps it inside data_dir.
        if !s3s::path::check_bucket_name(bucket) {
            return Err(DevError::InvalidBucket {
                bucket: bucket.clone(),
            });
        }
        create_dir(&data_dir.join(bucket)).await?;
    }
    Ok(())
}

async fn create_dir(path: &Path) -> Result<(), DevError> {
    tokio::fs::create_dir_all(path)
        .await
        .map_err(|source| DevError::CreateDir {
            path: path.to_owned(),
            source,
        })
}

/// The S3 protocol stack: SigV4 checked against the dev keys, path-style addressing (no host
/// parser is set, so the bucket is always the first path segment).
fn s3_service(data_dir: &Path, events: Uploads) -> Result<S3Service, DevError> {
    let fs = FileSystem::new(data_dir).map_err(|err| DevError::DataDir {
        path: data_dir.to_owned(),
        source: err.into(),
    })?;
    let notifying = NotifyingFs::new(fs, data_dir.to_owned(), events);
    let mut builder = S3ServiceBuilder::new(notifying);
    builder.set_auth(SimpleAuth::from_single(DEV_ACCESS_KEY, DEV_SECRET_KEY));
    Ok(builder.build())
}

/// Accepts connections until told to stop, then drains them.
async fn serve(listener: TcpListener, service: S3Service, mut stop: oneshot::Receiver<()>) {
    let connections = ConnBuilder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, client)) => {
                    let service = WithClientAddr { inner: service.clone(), client };
                    spawn_connection(&connections, &graceful, socket, service);
                }
                Err(err) => {
                    warn!(error = %err, "dev endpoint accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            // A dropped endpoint counts as a stop request too.
            _ = &mut stop => break,
        }
    }

    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            grace_secs = SHUTDOWN_GRACE.as_secs(),
            "dev endpoint requests cut off at shutdown"
        );
    }
}

fn spawn_connection(
    connections: &ConnBuilder<TokioExecutor>,
    graceful: &GracefulShutdown,
    socket: TcpStream,
    service: WithClientAddr,
) {
    let connection = connections
        .serve_connection(TokioIo::new(socket), service)
        .into_owned();
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            debug!(error = %err, "dev connection ended with an error");
        }
    });
}

/// Hands the client's address to the S3 handlers, which report it as the event's source IP.
#[derive(Clone)]
struct WithClientAddr {
    inner: S3Service,
    client: SocketAddr,
}

impl hyper::service::Service<hyper::Request<Incoming>> for WithClientAddr {
    type Response = <S3Service as hyper::service::Service<hyper::Request<Incoming>>>::Response;
    type Error = <S3Service as hyper::service::Service<hyper::Request<Incoming>>>::Error;
    type Future = <S3Service as hyper::service::Service<hyper::Request<Incoming>>>::Future;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(ClientAddr(self.client));
        hyper::service::Service::call(&self.inner, req)
    }
}
