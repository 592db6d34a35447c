//! The `botbridge` command.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use botbridge::config::{ServeArgs, Settings};

#[derive(Parser)]
#[command(name = "botbridge", version, about = "Chat-bot runtime: WebSocket clients and wasm bots over one schema")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge (on the built-in simulated world unless accounts are configured).
    Serve(ServeArgs),
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
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let settings = Settings::resolve(&args)?;
            tokio::runtime::Runtime::new().context("starting the async runtime")?.block_on(serve(settings))
        }
        Command::Check { file } => check(&file),
        Command::Connect { url } => {
            tokio::runtime::Runtime::new().context("starting the async runtime")?.block_on(connect(url))
        }
    }
}

fn check(file: &std::path::Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let report = botbridge::wasm::check(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
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
