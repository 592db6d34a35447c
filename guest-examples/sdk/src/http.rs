//! Outbound HTTP, over wasi:http with [wstd]'s client. The bridge sends a
//! request only to an origin listed in the bot's `allowed_hosts`; any other
//! comes back as an [`Error`] whose [`Error::is_refused`] is true. Each
//! request has the bridge's timeout and response size cap.
//!
//! ```ignore
//! let weather = http::get("https://api.example.com/weather?city=Beijing")?.text();
//! let answer: Answer = http::post_json(url, &question, &[("authorization", &bearer)])?.json()?;
//! ```

pub use wstd::http::{ErrorCode, HeaderMap, Method, StatusCode};

/// A response, its body read whole.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error { code: None, message: format!("bad JSON: {e}") })
    }

    /// Is the status 2xx?
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }
}

/// Why a request failed: the wasi:http error code when there is one.
#[derive(Debug, Clone)]
pub struct Error {
    pub code: Option<ErrorCode>,
    pub message: String,
}

impl Error {
    /// The bridge refused the request: the origin is not in `allowed_hosts`,
    /// or it resolves to an address the bot may not reach.
    pub fn is_refused(&self) -> bool {
        matches!(self.code, Some(ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited))
    }

    /// The request took longer than the bridge's `http_timeout_ms`.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.code,
            Some(ErrorCode::HttpResponseTimeout | ErrorCode::ConnectionTimeout | ErrorCode::ConnectionReadTimeout)
        )
    }

    fn from_wstd(e: wstd::http::Error) -> Self {
        let code = e.chain().find_map(|c| c.downcast_ref::<ErrorCode>()).cloned();
        Self { code, message: format!("{e:#}") }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "http: {}", self.message)
    }
}

impl std::error::Error for Error {}

async fn exchange(request: wstd::http::Request<Vec<u8>>) -> Result<Response, Error> {
    let response = wstd::http::Client::new().send(request).await.map_err(Error::from_wstd)?;
    let (parts, mut body) = response.into_parts();
    let body = body.contents().await.map_err(Error::from_wstd)?.to_vec();
    Ok(Response { status: parts.status, headers: parts.headers, body })
}

/// Sends `request` and reads the whole response.
pub fn send(request: wstd::http::Request<Vec<u8>>) -> Result<Response, Error> {
    wstd::runtime::block_on(exchange(request))
}

/// Sends every request at once (each still counts toward the bot's
/// `http_max_in_flight`); the results in the same order.
pub fn send_all(requests: Vec<wstd::http::Request<Vec<u8>>>) -> Vec<Result<Response, Error>> {
    wstd::runtime::block_on(async move {
        let tasks: Vec<_> = requests.into_iter().map(|r| wstd::runtime::spawn(exchange(r))).collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await);
        }
        results
    })
}

/// A request to build: `http::request(Method::PUT, url).body(bytes)`.
pub fn request(method: Method, url: &str) -> wstd::http::request::Builder {
    wstd::http::Request::builder().method(method).uri(url)
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, Error> {
    let request = request(Method::GET, url).body(Vec::new()).map_err(bad_request)?;
    send(request)
}

/// `POST url` with `body` as JSON and the extra `headers`.
pub fn post_json<T: serde::Serialize>(url: &str, body: &T, headers: &[(&str, &str)]) -> Result<Response, Error> {
    let json = serde_json::to_vec(body).map_err(|e| Error { code: None, message: format!("cannot encode JSON: {e}") })?;
    let mut builder = request(Method::POST, url).header("content-type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(builder.body(json).map_err(bad_request)?)
}

fn bad_request(e: impl core::fmt::Display) -> Error {
    Error { code: None, message: format!("bad request: {e}") }
}
