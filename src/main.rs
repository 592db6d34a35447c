//! The `botbridge` command.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use botbridge::config::{ServeArgs, Settings};

mod remote;

/// mimalloc instead of glibc's malloc: the echo path allocates and frees a
/// few dozen small blocks per message across threads (frames, IDs, WIT
/// values), where glibc spent about a fifth of the bridge's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "botbridge", version, about = "Chat-bot runtime: WebSocket clients and wasm bots over one schema")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge (on the built-in simulated world unless accounts are configured).
    Serve(Box<ServeArgs>),
    /// Tell whether a component fits the bot world; list its imports and exports.
    Check {
        /// The component file.
        file: std::path::PathBuf,
    },
    /// A line-mode WebSocket client: sends each stdin line as a frame, prints each frame received.
    Connect {
        /// e.g. ws://127.0.0.1:8080/ws?outgoing=1
        #[arg(default_value = "ws://127.0.0.1:8080/ws")]
        url: String,
    },
    /// Speak as a simulated user in the sim world and print what the bots answer.
    Say(SayArgs),
    /// Upload a bot to a running bridge (its admin API) and say whether it runs.
    Deploy(remote::DeployArgs),
    /// List the bots a running bridge runs.
    Bots {
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Put back the version a bot ran before (or `--to VERSION`).
    Rollback {
        name: String,
        /// A kept version (see `botbridge bots` or GET /api/bots).
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Stop a bot and remove its NAME.wasm (its config, kv data and kept versions stay).
    Remove {
        name: String,
        #[command(flatten)]
        remote: remote::Remote,
    },
}

#[derive(clap::Args)]
struct SayArgs {
    /// The bridge's WebSocket address.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    /// The bridge's token, if it has one.
    #[arg(long, env = "BOTBRIDGE_TOKEN")]
    token: Option<String>,
    /// Say it in this group…
    #[arg(long, conflicts_with = "friend", required_unless_present = "friend")]
    group: Option<i64>,
    /// …as this member (default: 30003 of the built-in world).
    #[arg(long = "as", default_value_t = 30003)]
    sender: i64,
    /// Or say it in private, as this friend.
    #[arg(long)]
    friend: Option<i64>,
    /// How long to wait for answers, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    wait_ms: u64,
    /// The message text.
    text: String,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let settings = Settings::resolve(&args)?;
            runtime()?.block_on(serve(settings))
        }
        Command::Check { file } => check(&file),
        Command::Connect { url } => runtime()?.block_on(connect(url)),
        Command::Say(args) => runtime()?.block_on(say(args)),
        Command::Deploy(args) => runtime()?.block_on(remote::deploy(args)),
        Command::Bots { remote } => runtime()?.block_on(remote::bots(remote)),
        Command::Rollback { name, to, remote } => runtime()?.block_on(remote::rollback(remote, name, to)),
        Command::Remove { name, remote } => runtime()?.block_on(remote::remove(remote, name)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the async runtime")
}

fn check(file: &std::path::Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let report = botbridge::wasm::check(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), botbridge::error_chain(&e)))?;
    println!("imports:");
    for i in &report.imports {
        println!("  {i}");
    }
    println!("exports:");
    for e in &report.exports {
        println!("  {e}");
    }
    match report.problem {
        None => {
            println!("{}: fits the botbridge:bot world", file.display());
            Ok(())
        }
        Some(problem) => anyhow::bail!("{}: does not fit the botbridge:bot world: {problem}", file.display()),
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let running = botbridge::app::start(settings).await?;
    let shutdown = running.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    running.wait().await.context("server failed")
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn connect(url: String) -> anyhow::Result<()> {
    use futures::{SinkExt, StreamExt};
    use tokio::io::AsyncBufReadExt;
    use tokio_tungstenite::tungstenite::Message;

    let (ws, _) = tokio_tungstenite::connect_async(&url).await.with_context(|| format!("connecting to {url}"))?;
    let (mut tx, mut rx) = ws.split();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => match line? {
                Some(line) if line.trim().is_empty() => {}
                Some(line) => tx.send(Message::Text(line.into())).await?,
                None => break,
            },
            frame = rx.next() => match frame {
                Some(Ok(Message::Text(t))) => println!("{t}"),
                Some(Ok(Message::Close(c))) => {
                    println!("closed: {c:?}");
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => break,
            },
        }
    }
    Ok(())
}

/// `say`: one SimMessage, then every bot's answer for `wait_ms`, one line each.
async fn say(args: SayArgs) -> anyhow::Result<()> {
    use futures::{SinkExt, StreamExt};
    use serde_json::{Value, json};
    use tokio_tungstenite::tungstenite::Message;

    let mut url = format!("{}?outgoing=1&name=say", args.url);
    if let Some(token) = &args.token {
        url.push_str(&format!("&token={token}"));
    }
    let (mut ws, _) =
        tokio_tungstenite::connect_async(&url).await.with_context(|| format!("connecting to {}", args.url))?;
    let message = json!([{"type": "Plain", "msg": args.text}]);
    let content = match (args.group, args.friend) {
        (Some(group), _) => json!({"group": group, "sender": args.sender, "message": message}),
        (None, friend) => json!({"friend": friend, "message": message}),
    };
    let frame = json!({"type": "SimMessage", "id": "say", "content": content});
    ws.send(Message::Text(frame.to_string().into())).await?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(args.wait_ms);
    while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, ws.next()).await {
        let Message::Text(text) = frame? else { continue };
        let v: Value = serde_json::from_str(text.as_str()).context("the bridge sent a frame that is not JSON")?;
        match v["type"].as_str() {
            Some("result") if v["ok"] == false => anyhow::bail!("refused: {}", v["error"]),
            Some("outgoing") => {
                let d = &v["data"];
                let said: String = d["message"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| match e["type"].as_str() {
                        Some("Plain") => e["msg"].as_str().map(str::to_owned),
                        Some("At") => Some(format!("@{}", e["target"])),
                        Some("MessageSource") | None => None,
                        Some(other) => Some(format!("[{other}]")),
                    })
                    .collect();
                let target = &d["target"];
                let place = match target["type"].as_str() {
                    Some("group") => format!("group {}", target["group"]),
                    Some("friend") => format!("friend {}", target["friend"]),
                    _ => format!("temp {} via {}", target["user"], target["group"]),
                };
                println!("{} → {place}: {said}", d["by"].as_str().unwrap_or("?"));
            }
            Some("revoke") => println!("(recalled {} by {})", v["data"]["msgID"], v["data"]["revoker"]),
            Some("group") if v["data"]["type"] == "mute" => {
                println!("(muted {} in {} for {} s)", v["data"]["who"], v["data"]["group"], v["data"]["duration"])
            }
            _ => {}
        }
    }
    Ok(())
}
