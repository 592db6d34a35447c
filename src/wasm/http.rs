//! Outbound HTTP for bots: `wasi:http/outgoing-handler`, sent by the host
//! only to origins in the bot's `allowed_hosts`. The address is checked after
//! DNS and the connection goes to that checked address, so a name cannot be
//! rebound to loopback or the LAN between check and connect. Each request has
//! a deadline (connect to last body byte), a response size cap, and a place
//! among the bot's requests in flight. Waiting happens in the host, outside
//! the bot's CPU budget and off every other bot's path.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::limits::BotConfig;
use super::logbook::LogLevel;
use super::store::BotLog;
use crate::metrics::{BotMetrics, HttpOutcome};

/// One `allowed_hosts` entry: scheme, host and port, as in
/// `"https://api.example.com"`, `"http://127.0.0.1:11434"` or
/// `"https://*.example.com"` (any subdomain, not the domain itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Origin {
    https: bool,
    host: HostPattern,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// A lower-case DNS name.
    Name(String),
    /// An IP literal: the one way to open a loopback or private address.
    Ip(IpAddr),
    /// `*.suffix`: names that end in `.suffix`.
    Subdomains(String),
}

/// Written as it is read: `"https://api.example.com"`.
impl serde::Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        match &self.host {
            HostPattern::Name(n) => write!(f, "{scheme}://{n}:{}", self.port),
            HostPattern::Ip(IpAddr::V6(ip)) => write!(f, "{scheme}://[{ip}]:{}", self.port),
            HostPattern::Ip(ip) => write!(f, "{scheme}://{ip}:{}", self.port),
            HostPattern::Subdomains(s) => write!(f, "{scheme}://*.{s}:{}", self.port),
        }
    }
}

impl TryFrom<String> for Origin {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = |why: &str| format!("allowed_hosts entry {text:?}: {why}");
        // `*` is not a host character to the URL parser: parse a stand-in.
        let (wild, parsable) = match text.split_once("://*.") {
            Some((scheme, rest)) => (true, format!("{scheme}://wildcard.{rest}")),
            None => (false, text.clone()),
        };
        let url = url::Url::parse(&parsable).map_err(|e| bad(&e.to_string()))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(bad("the scheme must be http or https")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("no user or password"));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(bad("an origin has no path, query or fragment"));
        }
        let port = url.port_or_known_default().ok_or_else(|| bad("no port"))?;
        let host = match url.host() {
            Some(url::Host::Ipv4(ip)) if !wild => HostPattern::Ip(ip.into()),
            Some(url::Host::Ipv6(ip)) if !wild => HostPattern::Ip(canonical(ip.into())),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                match name.strip_prefix("wildcard.") {
                    Some(suffix) if wild && suffix.contains('.') => HostPattern::Subdomains(suffix.to_owned()),
                    Some(_) if wild => return Err(bad("a wildcard needs a domain of two labels or more")),
                    _ => HostPattern::Name(name),
                }
            }
            _ => return Err(bad("no host")),
        };
        Ok(Self { https, host, port })
    }
}

/// Where a request's host points: a name (resolved later) or an address.
enum Target {
    Name(String),
    Ip(IpAddr),
}

impl Origin {
    fn matches(&self, https: bool, target: &Target, port: u16) -> bool {
        if self.https != https || self.port != port {
            return false;
        }
        match (&self.host, target) {
            (HostPattern::Name(a), Target::Name(b)) => a == b,
            (HostPattern::Ip(a), Target::Ip(b)) => a == b,
            (HostPattern::Subdomains(s), Target::Name(b)) => {
                b.strip_suffix(s.as_str()).is_some_and(|head| head.len() > 1 && head.ends_with('.'))
            }
            _ => false,
        }
    }

    /// May this origin reach `ip`? Public addresses yes; loopback, private,
    /// link-local and the like only when the entry names that very address.
    fn reaches(&self, ip: IpAddr) -> bool {
        !crate::media::is_internal(ip) || self.host == HostPattern::Ip(ip)
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// A bot's side of wasi:http: its allowed origins and limits. One per
/// instance; the in-flight count is shared by every instance of the version.
pub struct OutboundHttp {
    allowed: Arc<[Origin]>,
    timeout: Duration,
    max_bytes: u64,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    log: BotLog,
    metrics: BotMetrics,
}

impl OutboundHttp {
    pub fn new(config: &BotConfig, in_flight: Arc<Semaphore>, log: BotLog, metrics: BotMetrics) -> Self {
        Self {
            allowed: config.allowed_hosts.clone().into(),
            timeout: Duration::from_millis(config.http_timeout_ms),
            max_bytes: config.http_max_bytes,
            in_flight,
            max_in_flight: config.http_max_in_flight as usize,
            log,
            metrics,
        }
    }

    /// Has the bot a request in flight (its response not yet read to the end)?
    pub fn busy(&self) -> bool {
        self.in_flight.available_permits() < self.max_in_flight
    }

    /// The permit for a new request, or why it may not go out.
    fn admit(&self, uri: &http::Uri) -> Result<(Origin, Target, OwnedSemaphorePermit), Error> {
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => return Err(Error::HttpProtocolError),
        };
        let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let target = match host.parse::<IpAddr>() {
            Ok(ip) => Target::Ip(canonical(ip)),
            Err(_) => Target::Name(host.trim_end_matches('.').to_ascii_lowercase()),
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let shown = format!("{}://{host}:{port}", if https { "https" } else { "http" });
        let Some(origin) = self.allowed.iter().find(|o| o.matches(https, &target, port)) else {
            self.refuse(&format!("{shown} is not in allowed_hosts"));
            return Err(Error::HttpRequestDenied);
        };
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            self.refuse(&format!("{shown}: http_max_in_flight requests are already in flight"));
            return Err(Error::ConnectionLimitReached);
        };
        Ok((origin.clone(), target, permit))
    }

    fn refuse(&self, why: &str) {
        self.log.emit(LogLevel::Warn, &format!("HTTP request refused: {why}"));
    }
}

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>,
            > + Send,
    > {
        drop(fut);
        let admitted = self.admit(request.uri());
        let deadline = Instant::now() + self.timeout;
        let connect_timeout = options.and_then(|o| o.connect_timeout).unwrap_or(self.timeout).min(self.timeout);
        let (max_bytes, log, metrics) = (self.max_bytes, self.log.clone(), self.metrics.clone());
        let exchange = async move {
            let host_name =
                request.uri().host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
            let connected = async {
                let (origin, target, permit) = admitted?;
                let addrs = resolve(&origin, target, deadline).await.inspect_err(|e| {
                    log.emit(LogLevel::Warn, &format!("HTTP request refused: {origin} for {host_name}: {e}"));
                })?;
                let stream = connect(&addrs, Instant::now() + connect_timeout).await?;
                Ok::<_, Error>((origin, permit, stream))
            };
            let (origin, permit, stream) = match connected.await {
                Ok(connected) => connected,
                Err(e) => {
                    // Let the guest finish its request body, so what it sees
                    // is this error, not a body stream cut off under it.
                    let mut body = request.into_body();
                    let _ = tokio::time::timeout_at(deadline, async { while let Some(Ok(_)) = body.frame().await {} })
                        .await;
                    return Err(e);
                }
            };
            let (response, io) =
                match tokio::time::timeout_at(deadline, exchange(stream, origin.https, &host_name, request)).await {
                    Ok(result) => result?,
                    Err(_) => return Err(Error::HttpResponseTimeout),
                };
            if response.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                > Some(max_bytes)
            {
                return Err(Error::HttpResponseBodySize(Some(max_bytes)));
            }
            let response = response.map(|incoming| {
                CappedBody {
                    incoming,
                    left: max_bytes,
                    max_bytes,
                    deadline: Box::pin(tokio::time::sleep_until(deadline)),
                    _permit: permit,
                }
                .boxed_unsync()
            });
            Ok((response, io))
        };
        Box::new(async move {
            let result = exchange.await;
            metrics.http(match &result {
                Ok(_) => HttpOutcome::Ok,
                Err(Error::HttpRequestDenied | Error::ConnectionLimitReached | Error::DestinationIpProhibited) => {
                    HttpOutcome::Refused
                }
                Err(Error::HttpResponseTimeout | Error::ConnectionTimeout) => HttpOutcome::Timeout,
                Err(Error::HttpResponseBodySize(_)) => HttpOutcome::TooLarge,
                Err(_) => HttpOutcome::Error,
            });
            result
        })
    }
}

/// The request's addresses that its origin may reach; refused when none.
async fn resolve(origin: &Origin, target: Target, deadline: Instant) -> Result<Vec<SocketAddr>, Error> {
    let port = origin.port;
    let found: Vec<SocketAddr> = match target {
        Target::Ip(ip) => vec![SocketAddr::new(ip, port)],
        Target::Name(name) => {
            match tokio::time::timeout_at(deadline, tokio::net::lookup_host((name.as_str(), port))).await {
                Err(_) => return Err(Error::DnsTimeout),
                Ok(Err(_)) => return Err(Error::DnsError { rcode: Some("no such name".into()), info_code: None }),
                Ok(Ok(addrs)) => addrs.map(|a| SocketAddr::new(canonical(a.ip()), a.port())).collect(),
            }
        }
    };
    let allowed: Vec<SocketAddr> = found.iter().copied().filter(|a| origin.reaches(a.ip())).collect();
    if allowed.is_empty() {
        return Err(if found.is_empty() { Error::DestinationNotFound } else { Error::DestinationIpProhibited });
    }
    Ok(allowed)
}

async fn connect(addrs: &[SocketAddr], deadline: Instant) -> Result<TcpStream, Error> {
    let mut last = Error::ConnectionRefused;
    for addr in addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = Error::Connect(e),
            Err(_) => return Err(Error::ConnectionTimeout),
        }
    }
    Err(last)
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// TLS if asked, the HTTP/1.1 handshake, and the request.
async fn exchange(
    stream: TcpStream,
    https: bool,
    host_name: &str,
    mut request: http::Request<WasiBody>,
) -> Result<(http::Response<hyper::body::Incoming>, IoFuture), Error> {
    // The request line carries the path only; the host is in `Host`.
    let path = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    *request.uri_mut() = http::Uri::try_from(path).map_err(|_| Error::HttpRequestUriInvalid)?;
    if https {
        // Built once: the root store is ~150 certificates.
        static TLS: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
        let config = TLS.get_or_init(|| {
            let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
            Arc::new(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
        });
        let name = rustls::pki_types::ServerName::try_from(host_name.to_owned()).map_err(Error::InvalidDnsNameError)?;
        let tls = tokio_rustls::TlsConnector::from(config.clone()).connect(name, stream).await.map_err(Error::Tls)?;
        send(hyper_util::rt::TokioIo::new(tls), request).await
    } else {
        send(hyper_util::rt::TokioIo::new(stream), request).await
    }
}

async fn send<IO>(
    io: IO,
    request: http::Request<WasiBody>,
) -> Result<(http::Response<hyper::body::Incoming>, IoFuture), Error>
where
    IO: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    let io: IoFuture = Box::new(async move { conn.await.map_err(Error::from) });
    let mut io = Box::into_pin(io);
    // The connection must be driven while the request is sent.
    let response = tokio::select! {
        response = sender.send_request(request) => response?,
        done = &mut io => {
            done?;
            return Err(Error::ConnectionTerminated);
        }
    };
    Ok((response, Box::new(io)))
}

/// A response body that stops at the size cap and the deadline, and holds
/// the request's place among the bot's requests in flight until it is done.
struct CappedBody {
    incoming: hyper::body::Incoming,
    left: u64,
    max_bytes: u64,
    deadline: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Error::HttpResponseTimeout)));
        }
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                if len > self.left {
                    return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(self.max_bytes)))));
                }
                self.left -= len;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(s: &str) -> Result<Origin, String> {
        Origin::try_from(s.to_owned())
    }

    #[test]
    fn origins_parse_and_match() {
        let o = origin("https://api.example.com").unwrap();
        assert!(o.matches(true, &Target::Name("api.example.com".into()), 443));
        assert!(!o.matches(false, &Target::Name("api.example.com".into()), 80));
        assert!(!o.matches(true, &Target::Name("api.example.com".into()), 8443));
        let w = origin("https://*.example.com").unwrap();
        assert!(w.matches(true, &Target::Name("a.b.example.com".into()), 443));
        assert!(!w.matches(true, &Target::Name("example.com".into()), 443));
        assert!(!w.matches(true, &Target::Name("badexample.com".into()), 443));
        let ip = origin("http://127.0.0.1:11434").unwrap();
        assert!(ip.matches(false, &Target::Ip("127.0.0.1".parse().unwrap()), 11434));
        assert!(ip.reaches("127.0.0.1".parse().unwrap()) && !ip.reaches("127.0.0.2".parse().unwrap()));
        assert!(!o.reaches("10.0.0.1".parse().unwrap()) && o.reaches("93.184.215.14".parse().unwrap()));
        assert!(!o.reaches("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!o.reaches("169.254.169.254".parse().unwrap()) && !o.reaches("fe80::1".parse().unwrap()));
        for bad in ["ftp://x.com", "https://x.com/path", "https://u:p@x.com", "https://*.com", "nonsense"] {
            assert!(origin(bad).is_err(), "{bad}");
        }
    }
}
