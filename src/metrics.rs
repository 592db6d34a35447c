//! Prometheus metrics, served at `/metrics` in the Prometheus text format.
//!
//! Two kinds: counters and histograms kept where things happen (`Metrics`,
//! owned by the bridge, so every part that holds the bridge can count), and
//! values read when Prometheus scrapes (`Scraped`: the bots' states, accounts
//! online, the bus's deliveries and drops, the state file's commits), so the
//! hot paths pay nothing for those.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::bridge::Bridge;
use crate::schema::{AccountId, OpData, OpError, OpKind};
use crate::store::RedbStore;
use crate::wasm::{RunState, WasmHost};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpResult {
    op: &'static str,
    /// `ok`, or the error code.
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpName {
    op: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BotName {
    bot: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BotHttp {
    bot: String,
    /// `ok` (any HTTP status), `refused` (origin or address), `timeout`, `too_large`, `error`.
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabel {
    account: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BotVersion {
    bot: String,
    version: String,
    state: &'static str,
}

fn latency_histogram() -> Histogram {
    // 25 µs … about 0.8 s.
    Histogram::new(exponential_buckets(25e-6, 2.0, 16))
}

/// What is counted as it happens. Cheap to share: every metric is an `Arc` inside.
#[derive(Debug)]
pub struct Metrics {
    events: Counter,
    operations: Family<OpResult, Counter>,
    op_seconds: Family<OpName, Histogram, fn() -> Histogram>,
    ws_connections: Gauge,
    bot_handled: Family<BotName, Counter>,
    bot_failures: Family<BotName, Counter>,
    bot_restarts: Family<BotName, Counter>,
    bot_timers: Family<BotName, Counter>,
    bot_ops_limited: Family<BotName, Counter>,
    bot_http: Family<BotHttp, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            events: Counter::default(),
            operations: Family::default(),
            op_seconds: Family::new_with_constructor(latency_histogram),
            ws_connections: Gauge::default(),
            bot_handled: Family::default(),
            bot_failures: Family::default(),
            bot_restarts: Family::default(),
            bot_timers: Family::default(),
            bot_ops_limited: Family::default(),
            bot_http: Family::default(),
        }
    }
}

/// A WebSocket connection, counted while it is open.
pub struct Connected(Gauge);

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// One bot's counters, looked up once per version instead of per event.
#[derive(Debug, Clone)]
pub struct BotMetrics {
    pub handled: Counter,
    pub failures: Counter,
    pub restarts: Counter,
    pub timers_fired: Counter,
    /// Operations refused by the bot's `ops_per_second` / `ops_burst`.
    pub ops_limited: Counter,
    name: String,
    http: Family<BotHttp, Counter>,
}

/// How an outbound HTTP request of a bot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpOutcome {
    /// A response came (whatever its status).
    Ok,
    /// The origin is not allowed, or the address is internal.
    Refused,
    Timeout,
    TooLarge,
    Error,
}

impl HttpOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "refused",
            Self::Timeout => "timeout",
            Self::TooLarge => "too_large",
            Self::Error => "error",
        }
    }
}

impl BotMetrics {
    pub fn http(&self, outcome: HttpOutcome) {
        self.http.get_or_create(&BotHttp { bot: self.name.clone(), result: outcome.label() }).inc();
    }
}

impl Metrics {
    /// An event from an account entered the bridge.
    pub fn event_in(&self) {
        self.events.inc();
    }

    /// An operation finished, after `elapsed`.
    pub fn operation(&self, kind: OpKind, result: &Result<OpData, OpError>, elapsed: Duration) {
        let op = kind.name();
        let result = match result {
            Ok(_) => "ok",
            Err(e) => e.code.as_str(),
        };
        self.operations.get_or_create(&OpResult { op, result }).inc();
        self.op_seconds.get_or_create(&OpName { op }).observe(elapsed.as_secs_f64());
    }

    /// Counts a WebSocket connection until the guard drops.
    pub fn ws_connected(&self) -> Connected {
        self.ws_connections.inc();
        Connected(self.ws_connections.clone())
    }

    pub fn bot(&self, name: &str) -> BotMetrics {
        let label = BotName { bot: name.to_owned() };
        BotMetrics {
            handled: self.bot_handled.get_or_create_owned(&label),
            failures: self.bot_failures.get_or_create_owned(&label),
            restarts: self.bot_restarts.get_or_create_owned(&label),
            timers_fired: self.bot_timers.get_or_create_owned(&label),
            ops_limited: self.bot_ops_limited.get_or_create_owned(&label),
            name: name.to_owned(),
            http: self.bot_http.clone(),
        }
    }

    fn register(&self, registry: &mut Registry) {
        registry.register("botbridge_events", "Events that entered the bridge from its accounts", self.events.clone());
        registry.register(
            "botbridge_operations",
            "Operations answered, by operation and result (ok or the error code)",
            self.operations.clone(),
        );
        registry.register(
            "botbridge_operation_duration_seconds",
            "Time from an operation's arrival to its answer",
            self.op_seconds.clone(),
        );
        registry.register("botbridge_ws_connections", "Open WebSocket connections", self.ws_connections.clone());
        registry.register(
            "botbridge_bot_handled",
            "Events and timers a bot handled without error",
            self.bot_handled.clone(),
        );
        registry.register(
            "botbridge_bot_failures",
            "Calls into a bot that trapped or ran out of a limit",
            self.bot_failures.clone(),
        );
        registry.register("botbridge_bot_restarts", "Fresh instances made after a failure", self.bot_restarts.clone());
        registry.register("botbridge_bot_timers_fired", "Timer firings delivered to a bot", self.bot_timers.clone());
        registry.register(
            "botbridge_bot_ops_limited",
            "Operations of a bot refused by its ops_per_second / ops_burst limit",
            self.bot_ops_limited.clone(),
        );
        registry.register(
            "botbridge_bot_http_requests",
            "A bot's outbound HTTP requests, by result",
            self.bot_http.clone(),
        );
    }
}

/// What is read at scrape time.
struct Scraped {
    bridge: Arc<Bridge>,
    wasm: WasmHost,
    state: Option<RedbStore>,
}

impl std::fmt::Debug for Scraped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scraped").finish_non_exhaustive()
    }
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// One metric family of type `M` with a sample per account (none: the
/// family is described, without samples).
fn per_account<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl Iterator<Item = (AccountId, M)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (account, metric) in samples {
        metric.encode(family.encode_family(&AccountLabel { account: account.0.to_string() })?)?;
    }
    Ok(())
}

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let bus = self.bridge.bus();
        counter(&mut encoder, "botbridge_deliveries", "Frames queued for bots and clients", bus.delivered())?;
        counter(
            &mut encoder,
            "botbridge_lagged_drops",
            "Consumers dropped because their queue was full",
            bus.dropped_consumers(),
        )?;
        gauge(&mut encoder, "botbridge_last_seq", "The newest event's seq", bus.last_seq() as i64)?;
        if let Some(state) = &self.state {
            counter(&mut encoder, "botbridge_state_commits", "State file commits (one fsync each)", state.commits())?;
        }
        let accounts = self.bridge.accounts();
        let online = accounts.iter().map(|&a| (a, ConstGauge::new(i64::from(self.bridge.account_online(a)))));
        per_account(
            &mut encoder,
            "botbridge_account_online",
            "1 while the account is connected",
            MetricType::Gauge,
            online,
        )?;
        let queued = self.bridge.pacer_queues().into_iter();
        let queued = queued.filter_map(|(a, waiting)| Some((a, ConstGauge::new(waiting? as i64))));
        let help = "Messages waiting in a paced account's send queue";
        per_account(&mut encoder, "botbridge_pacer_queue", help, MetricType::Gauge, queued)?;
        let repeats = self.bridge.upstream_duplicates().into_iter().map(|(a, n)| (a, ConstCounter::new(n)));
        per_account(
            &mut encoder,
            "botbridge_upstream_duplicates",
            "Upstream frames dropped as repeats of ones already handled",
            MetricType::Counter,
            repeats,
        )?;
        {
            let mut bots = encoder.encode_descriptor(
                "botbridge_bot",
                "1 for each loaded bot, labelled with its running version and state (running or parked)",
                None,
                MetricType::Gauge,
            )?;
            for status in self.wasm.statuses() {
                let state = match status.state {
                    RunState::Running => "running",
                    RunState::Parked { .. } => "parked",
                };
                let label = BotVersion { bot: status.name, version: status.version, state };
                ConstGauge::new(1i64).encode(bots.encode_family(&label)?)?;
            }
        }
        let mut kv =
            encoder.encode_descriptor("botbridge_bot_kv_bytes", "Bytes of a bot's kv data", None, MetricType::Gauge)?;
        for status in self.wasm.statuses() {
            let bytes = self.wasm.kv_bytes(&status.name).unwrap_or(0);
            ConstGauge::new(bytes as i64).encode(kv.encode_family(&BotName { bot: status.name })?)?;
        }
        Ok(())
    }
}

/// Everything `/metrics` shows, for one running bridge.
pub fn registry(bridge: Arc<Bridge>, wasm: WasmHost, state: Option<RedbStore>) -> Registry {
    let mut registry = Registry::default();
    bridge.metrics().register(&mut registry);
    if let Some(state) = &state {
        registry.register(
            "botbridge_state_commit_duration_seconds",
            "Time one state commit took (its transaction and fsync)",
            state.commit_seconds(),
        );
    }
    registry.register_collector(Box::new(Scraped { bridge, wasm, state }));
    registry
}

/// The text Prometheus reads.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, registry) {
        tracing::error!("encoding metrics: {e}");
    }
    out
}

/// `GET /metrics`, for the operator's tokens (as the console).
pub fn router(registry: Registry, auth: Arc<crate::auth::Auth>) -> axum::Router {
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;

    type Shared = (Arc<Registry>, Arc<crate::auth::Auth>);
    async fn scrape(
        State((registry, auth)): State<Shared>,
        Query(query): Query<std::collections::HashMap<String, String>>,
        headers: HeaderMap,
    ) -> axum::response::Response {
        if !auth.identify(&headers, &query).is_some_and(|who| who.may_watch()) {
            return (StatusCode::UNAUTHORIZED, "bad or missing token (Authorization: Bearer TOKEN)").into_response();
        }
        let content_type = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
        ([(header::CONTENT_TYPE, content_type)], render(&registry)).into_response()
    }
    axum::Router::new().route("/metrics", axum::routing::get(scrape)).with_state((Arc::new(registry), auth))
}
