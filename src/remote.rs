//! `botbridge deploy`, `bots`, `rollback` and `remove`: the admin API's
//! client, over plain HTTP/1.1 (put a TLS proxy in front of a bridge that
//! is reached over the internet).

use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::Value;

/// Where the bridge is and the admin token.
#[derive(clap::Args, Debug, Clone)]
pub struct Remote {
    /// The bridge's HTTP address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The bridge's `admin_token`.
    #[arg(long, env = "BOTBRIDGE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
}

#[derive(clap::Args, Debug)]
pub struct DeployArgs {
    /// The component.
    file: std::path::PathBuf,
    /// Its NAME.toml, sent with it (without one, the bot's config stays as it is).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// The bot's name [default: the file's name without `.wasm`].
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

/// Upload chunks: the progress bar moves once per chunk.
const CHUNK: usize = 64 << 10;

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

impl Remote {
    /// Sends one request; returns the status and the JSON answer.
    async fn send(
        &self,
        method: http::Method,
        path: &str,
        content_type: Option<&str>,
        body: Body,
    ) -> anyhow::Result<(u16, Value)> {
        let url = url::Url::parse(&self.url).with_context(|| format!("--url {}", self.url))?;
        if url.scheme() != "http" {
            bail!("--url must be http://HOST:PORT (for https, reach the bridge through a local proxy or tunnel)");
        }
        let host = url.host_str().context("--url has no host")?.to_owned();
        let port = url.port().unwrap_or(80);
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .with_context(|| format!("connecting to {host}:{port}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.context("HTTP handshake")?;
        tokio::spawn(conn);
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, authority)
            .header(http::header::AUTHORIZATION, format!("Bearer {}", self.admin_token));
        if let Some(content_type) = content_type {
            request = request.header(http::header::CONTENT_TYPE, content_type);
        }
        let response = sender.send_request(request.body(body)?).await.context("sending the request")?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.context("reading the answer")?.to_bytes();
        let answer = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).trim().to_owned()));
        Ok((status, answer))
    }
}

fn empty() -> Body {
    Full::new(Bytes::new()).map_err(|never| match never {}).boxed()
}

/// Prints a deploy's or rollback's answer; an error when it was refused.
fn report(what: &str, status: u16, answer: &Value) -> anyhow::Result<()> {
    if status == 200 && answer["ok"] == true {
        println!(
            "{what} {}: {} version {} (sha256 {})",
            answer["name"].as_str().unwrap_or("?"),
            answer["state"].as_str().unwrap_or("?"),
            answer["version"].as_str().unwrap_or("?"),
            answer["sha256"].as_str().unwrap_or("?"),
        );
        return Ok(());
    }
    let why = answer["error"].as_str().map(str::to_owned).unwrap_or_else(|| answer.to_string());
    bail!("refused (HTTP {status}): {why}")
}

/// A `multipart/form-data` body of the component and its config, streamed
/// in chunks that move `bar`.
fn form(wasm: Vec<u8>, toml: Option<Vec<u8>>, bar: indicatif::ProgressBar) -> (String, u64, Body) {
    let boundary = format!("botbridge-{:016x}", rand::random::<u64>());
    let mut head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"wasm\"; filename=\"bot.wasm\"\r\nContent-Type: application/wasm\r\n\r\n"
    )
    .into_bytes();
    let mut tail = Vec::new();
    if let Some(toml) = toml {
        tail.extend_from_slice(
            format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"toml\"; filename=\"bot.toml\"\r\nContent-Type: application/toml\r\n\r\n").as_bytes(),
        );
        tail.extend_from_slice(&toml);
    }
    tail.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let total = (head.len() + wasm.len() + tail.len()) as u64;
    let wasm = Bytes::from(wasm);
    let chunks: Vec<Bytes> =
        (0..wasm.len()).step_by(CHUNK).map(|at| wasm.slice(at..(at + CHUNK).min(wasm.len()))).collect();
    let pieces =
        std::iter::once(Bytes::from(std::mem::take(&mut head))).chain(chunks).chain(std::iter::once(Bytes::from(tail)));
    let stream = futures::stream::iter(pieces).map(move |piece| {
        bar.inc(piece.len() as u64);
        Ok::<_, std::io::Error>(Frame::data(piece))
    });
    (format!("multipart/form-data; boundary={boundary}"), total, BodyExt::boxed(StreamBody::new(stream)))
}

pub async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let wasm = tokio::fs::read(&args.file).await.with_context(|| format!("reading {}", args.file.display()))?;
    let toml = match &args.config {
        Some(path) => Some(tokio::fs::read(path).await.with_context(|| format!("reading {}", path.display()))?),
        None => None,
    };
    let name = match args.name {
        Some(name) => name,
        None => args.file.file_stem().and_then(|s| s.to_str()).context("name the bot with --name")?.to_owned(),
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("uploading {name}"));
    let (content_type, total, body) = form(wasm, toml, bar.clone());
    bar.set_length(total);
    let path = format!("/api/bots/{name}");
    let sent = args.remote.send(http::Method::PUT, &path, Some(&content_type), body);
    // The bridge compiles after the upload: say so while it does.
    let checking = {
        let (bar, name) = (bar.clone(), name.clone());
        tokio::spawn(async move {
            while bar.position() < total {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            bar.set_message(format!("{name} uploaded, the bridge is checking and starting it"));
        })
    };
    let answer = sent.await;
    checking.abort();
    bar.finish_and_clear();
    let (status, answer) = answer?;
    report("deployed", status, &answer)
}

pub async fn rollback(remote: Remote, name: String, to: Option<String>) -> anyhow::Result<()> {
    let body = match to {
        Some(version) => Full::new(Bytes::from(serde_json::json!({"version": version}).to_string()))
            .map_err(|never| match never {})
            .boxed(),
        None => empty(),
    };
    let (status, answer) =
        remote.send(http::Method::POST, &format!("/api/bots/{name}/rollback"), Some("application/json"), body).await?;
    report("rolled back", status, &answer)
}

pub async fn remove(remote: Remote, name: String) -> anyhow::Result<()> {
    let (status, answer) = remote.send(http::Method::DELETE, &format!("/api/bots/{name}"), None, empty()).await?;
    if status == 200 {
        println!("removed {name}");
        return Ok(());
    }
    bail!("refused (HTTP {status}): {}", answer["error"].as_str().unwrap_or(&answer.to_string()))
}

/// `botbridge bots`: one line per bot.
pub async fn bots(remote: Remote) -> anyhow::Result<()> {
    let (status, answer) = remote.send(http::Method::GET, "/api/bots", None, empty()).await?;
    if status != 200 {
        bail!("refused (HTTP {status}): {answer}");
    }
    let bots = answer["bots"].as_array().cloned().unwrap_or_default();
    if bots.is_empty() {
        println!("no bots");
    }
    println!("{:<20} {:<8} {:<17} {:>8} {:>8} {:>8}", "NAME", "STATE", "VERSION", "HANDLED", "FAILURES", "KEPT");
    for bot in bots {
        println!(
            "{:<20} {:<8} {:<17} {:>8} {:>8} {:>8}",
            bot["name"].as_str().unwrap_or("?"),
            bot["state"].as_str().unwrap_or("?"),
            bot["version"].as_str().unwrap_or("-"),
            bot["handled"],
            bot["failures"],
            bot["versions"].as_array().map_or(0, Vec::len),
        );
        for why in [&bot["reason"], &bot["rejected"]] {
            if let Some(why) = why.as_str() {
                println!("    {why}");
            }
        }
    }
    Ok(())
}
