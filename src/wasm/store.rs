//! One bot's Store: its data (`BotState`), the host side of the imports it may
//! call, and a live instance with its limits applied to every call.

use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use tokio::sync::Semaphore;
use wasmtime::component::{Instance, InstancePre, ResourceTable, TypedFunc};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::botbridge::bot::{config as wit_config, kv, log, operations, timers as wit_timers, types};
use super::bindings::v0_2::botbridge::bot::types as v0_2;
use super::convert;
use super::http::OutboundHttp;
use super::kv::{Bucket, KvError};
use super::limits::{BotConfig, LogGate, RateLimiter};
use super::logbook::{LogLevel, Logbook, MAX_LINE, cut};
use super::settings::Settings;
use super::timers::{self, Caps, Schedule, TimerError, Timers};
use crate::bridge::{Bridge, Caller};
use crate::metrics::BotMetrics;
use crate::schema::{self as s, ErrorCode, OpData, OpError, Operation};

/// Milliseconds per epoch tick: the CPU deadline's resolution.
pub const TICK_MS: u64 = 5;
/// A gap between ticks this long means the guest was not running.
const WAIT_GAP: std::time::Duration = std::time::Duration::from_millis(TICK_MS * 3);

/// What a bot's Store holds.
pub struct BotState {
    name: Arc<str>,
    bridge: Arc<Bridge>,
    caller: Caller,
    limits: StoreLimits,
    rate: RateLimiter,
    /// Operations `rate` refused (`/metrics`: a bot that floods is seen, not only logged).
    ops_limited: prometheus_client::metrics::counter::Counter,
    kv: Arc<Bucket>,
    log: BotLog,
    timers: Arc<Timers>,
    timer_caps: Caps,
    settings: Arc<Settings>,
    /// Ticks used by the current call, and how many it may use.
    ticks: u64,
    max_ticks: u64,
    /// When the last tick was counted: a long gap while an HTTP request is
    /// in flight was spent waiting for it, not running.
    last_tick: std::time::Instant,
    wasi: WasiCtx,
    http_ctx: WasiHttpCtx,
    http: OutboundHttp,
    table: ResourceTable,
}

impl WasiView for BotState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for BotState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http_ctx, table: &mut self.table, hooks: &mut self.http }
    }
}

impl BotState {
    async fn op(&mut self, op: Operation) -> Result<OpData, types::Error> {
        if !self.rate.try_acquire() {
            tracing::debug!(bot = %self.name, op = op.name(), "rate limited");
            self.ops_limited.inc();
            return Err(convert::error(OpError::new(ErrorCode::RateLimited, "operation rate limit reached")));
        }
        let bridge = self.bridge.clone();
        bridge.execute(&self.caller, op).await.map_err(convert::error)
    }

    async fn send(&mut self, op: Operation) -> Result<types::Sent, types::Error> {
        match self.op(op).await? {
            OpData::Sent { receipt_id, source_id } => {
                Ok(types::Sent { receipt_id: receipt_id.0, source_id: source_id.0 })
            }
            _ => Err(internal()),
        }
    }

    /// A chain to send, with the bot's secrets masked in its text.
    fn chain(&self, message: Vec<types::Element>) -> s::MessageChain {
        let mut chain = convert::chain_from(message);
        self.settings.mask_chain(&mut chain);
        chain
    }

    async fn done(&mut self, op: Operation) -> Result<(), types::Error> {
        self.op(op).await.map(|_| ())
    }
}

fn internal() -> types::Error {
    convert::error(OpError::new(ErrorCode::Internal, "unexpected operation result"))
}

impl types::Host for BotState {}

impl operations::Host for BotState {
    async fn reply(&mut self, reply_key: String, message: Vec<types::Element>) -> Result<types::Sent, types::Error> {
        let message = self.chain(message);
        self.send(Operation::Reply(s::ReplyContent { id: s::ReplyKey(reply_key), message })).await
    }

    async fn send_to_group(
        &mut self,
        bot: Option<i64>,
        group: i64,
        message: Vec<types::Element>,
    ) -> Result<types::Sent, types::Error> {
        let message = self.chain(message);
        self.send(Operation::SendToGroup(s::SendToGroupContent {
            account: bot.map(s::AccountId),
            group: s::GroupId(group),
            message,
        }))
        .await
    }

    async fn send_to_friend(
        &mut self,
        bot: Option<i64>,
        friend: i64,
        message: Vec<types::Element>,
    ) -> Result<types::Sent, types::Error> {
        let message = self.chain(message);
        self.send(Operation::SendToFriend(s::SendToFriendContent {
            account: bot.map(s::AccountId),
            friend: s::UserId(friend),
            message,
        }))
        .await
    }

    async fn recall_receipt(&mut self, receipt: String) -> Result<(), types::Error> {
        self.done(Operation::RecallReceipt(s::RecallReceiptContent { receipt: s::ReceiptId(receipt) })).await
    }

    async fn recall(&mut self, message_source: String) -> Result<(), types::Error> {
        self.done(Operation::Recall(s::RecallContent { message_source: s::SourceId(message_source) })).await
    }

    async fn mute_member(
        &mut self,
        bot: Option<i64>,
        whom: operations::MuteTarget,
        seconds: i64,
    ) -> Result<(), types::Error> {
        let (group, member, message_source) = match whom {
            operations::MuteTarget::Member(m) => (Some(s::GroupId(m.group)), Some(s::UserId(m.member)), None),
            operations::MuteTarget::SenderOf(source) => (None, None, Some(s::SourceId(source))),
        };
        let account = bot.map(s::AccountId);
        self.done(Operation::MuteMember(s::MuteMemberContent { account, group, member, message_source, time: seconds }))
            .await
    }

    async fn kick_member(
        &mut self,
        bot: Option<i64>,
        group: i64,
        member: i64,
        reject_rejoin: bool,
    ) -> Result<(), types::Error> {
        self.done(Operation::KickMember(s::KickMemberContent {
            account: bot.map(s::AccountId),
            group: s::GroupId(group),
            member: s::UserId(member),
            reject_rejoin,
        }))
        .await
    }

    async fn mute_all(&mut self, bot: Option<i64>, group: i64, enable: bool) -> Result<(), types::Error> {
        let account = bot.map(s::AccountId);
        self.done(Operation::MuteAll(s::MuteAllContent { account, group: s::GroupId(group), enable })).await
    }

    async fn set_member_card(
        &mut self,
        bot: Option<i64>,
        group: i64,
        member: i64,
        card: String,
    ) -> Result<(), types::Error> {
        self.done(Operation::SetMemberCard(s::SetMemberCardContent {
            account: bot.map(s::AccountId),
            group: s::GroupId(group),
            member: s::UserId(member),
            card,
        }))
        .await
    }

    async fn set_group_admin(
        &mut self,
        bot: Option<i64>,
        group: i64,
        member: i64,
        enable: bool,
    ) -> Result<(), types::Error> {
        self.done(Operation::SetGroupAdmin(s::SetGroupAdminContent {
            account: bot.map(s::AccountId),
            group: s::GroupId(group),
            member: s::UserId(member),
            enable,
        }))
        .await
    }

    async fn send_poke(&mut self, bot: Option<i64>, group: Option<i64>, target: i64) -> Result<(), types::Error> {
        self.done(Operation::SendPoke(s::SendPokeContent {
            account: bot.map(s::AccountId),
            group: group.map(s::GroupId),
            target: s::UserId(target),
        }))
        .await
    }

    async fn get_message(&mut self, message_source: String) -> Result<types::FetchedMessage, types::Error> {
        let op = Operation::GetMessage(s::GetMessageContent { message_source: s::SourceId(message_source) });
        match self.op(op).await? {
            OpData::Message { message } => Ok(convert::fetched(&message)),
            _ => Err(internal()),
        }
    }

    async fn send_forward(
        &mut self,
        bot: Option<i64>,
        group: Option<i64>,
        friend: Option<i64>,
        nodes: Vec<types::ForwardNode>,
    ) -> Result<types::Sent, types::Error> {
        let mut nodes: Vec<s::ForwardNode> = nodes.into_iter().map(convert::node_from).collect();
        for node in &mut nodes {
            self.settings.mask_chain(&mut node.message);
        }
        self.send(Operation::SendForward(s::SendForwardContent {
            account: bot.map(s::AccountId),
            group: group.map(s::GroupId),
            friend: friend.map(s::UserId),
            nodes,
        }))
        .await
    }

    async fn handle_friend_request(
        &mut self,
        request_id: String,
        accept: bool,
        reason: Option<String>,
    ) -> Result<(), types::Error> {
        self.done(Operation::HandleFriendRequest(s::HandleRequestContent {
            request_id: s::RequestId(request_id),
            accept,
            reason,
        }))
        .await
    }

    async fn handle_group_invite(
        &mut self,
        request_id: String,
        accept: bool,
        reason: Option<String>,
    ) -> Result<(), types::Error> {
        self.done(Operation::HandleGroupInvite(s::HandleRequestContent {
            request_id: s::RequestId(request_id),
            accept,
            reason,
        }))
        .await
    }

    async fn handle_join_request(
        &mut self,
        request_id: String,
        accept: bool,
        reason: Option<String>,
    ) -> Result<(), types::Error> {
        self.done(Operation::HandleJoinRequest(s::HandleRequestContent {
            request_id: s::RequestId(request_id),
            accept,
            reason,
        }))
        .await
    }

    async fn list_friends(&mut self, bot: Option<i64>) -> Result<Vec<types::Friend>, types::Error> {
        match self.op(Operation::ListFriends(s::AccountContent { account: bot.map(s::AccountId) })).await? {
            OpData::Friends { friends } => Ok(friends.iter().map(convert::friend).collect()),
            _ => Err(internal()),
        }
    }

    async fn list_groups(&mut self, bot: Option<i64>) -> Result<Vec<types::Group>, types::Error> {
        match self.op(Operation::ListGroups(s::AccountContent { account: bot.map(s::AccountId) })).await? {
            OpData::Groups { groups } => Ok(groups.iter().map(convert::group).collect()),
            _ => Err(internal()),
        }
    }

    async fn list_members(&mut self, bot: Option<i64>, group: i64) -> Result<Vec<types::Member>, types::Error> {
        match self
            .op(Operation::ListMembers(s::ListMembersContent {
                account: bot.map(s::AccountId),
                group: s::GroupId(group),
            }))
            .await?
        {
            OpData::Members { members } => Ok(members.iter().map(convert::member).collect()),
            _ => Err(internal()),
        }
    }
}

impl log::Host for BotState {
    async fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        self.log.emit(level, &message);
    }
}

/// Where one bot's log lines go (its `log` calls, stdout and stderr): cut to
/// `MAX_LINE`, through its rate limit, then to the process log and the logbook.
#[derive(Clone)]
pub struct BotLog {
    pub bot: Arc<str>,
    pub gate: Arc<Mutex<LogGate>>,
    pub logbook: Arc<Logbook>,
    /// Its secrets, masked in every line.
    pub settings: Arc<Settings>,
}

impl BotLog {
    pub(super) fn emit(&self, level: LogLevel, message: &str) {
        let bot = &*self.bot;
        let Some(dropped) = self.gate.lock().admit() else {
            self.logbook.note_dropped(bot);
            return;
        };
        if dropped > 0 {
            tracing::warn!(bot, dropped, "log rate limit: {dropped} lines dropped");
            self.logbook.record(bot, LogLevel::Warn, &format!("log rate limit: {dropped} lines dropped"));
        }
        let masked = self.settings.mask(message);
        let message = cut(&masked);
        match level {
            LogLevel::Trace => tracing::trace!(bot, "{message}"),
            LogLevel::Debug => tracing::debug!(bot, "{message}"),
            LogLevel::Info => tracing::info!(bot, "{message}"),
            LogLevel::Stdout | LogLevel::Stderr => tracing::info!(bot, stream = ?level, "{message}"),
            LogLevel::Warn => tracing::warn!(bot, "{message}"),
            LogLevel::Error => tracing::error!(bot, "{message}"),
        }
        self.logbook.record(bot, level, message);
    }
}

impl kv::Host for BotState {
    async fn get(&mut self, key: String) -> Option<Vec<u8>> {
        self.kv.get(&key)
    }

    /// Durable (committed by the store) before it is acknowledged.
    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        self.kv.set(key, value).await.map_err(|e| match e {
            KvError::Store(ref source) => {
                tracing::error!(bot = %self.name, "kv write failed: {}", crate::error_chain(source));
                e.to_string()
            }
            refused => refused.to_string(),
        })
    }

    async fn delete(&mut self, key: String) {
        if let Err(e) = self.kv.delete(&key).await {
            tracing::warn!(bot = %self.name, "kv delete: {}", crate::error_chain(&e));
        }
    }

    async fn list(&mut self, prefix: String) -> Vec<String> {
        self.kv.list(&prefix)
    }
}

impl wit_timers::Host for BotState {
    async fn set(&mut self, tag: String, schedule: wit_timers::Schedule) -> Result<(), wit_timers::TimerError> {
        let request = match schedule {
            wit_timers::Schedule::After(ms) => timers::Request::After(ms),
            wit_timers::Schedule::At(at) => timers::Request::At(at),
            wit_timers::Schedule::Every(ms) => timers::Request::Every(ms),
            wit_timers::Schedule::Cron(c) => timers::Request::Cron { expression: c.expression, time_zone: c.time_zone },
        };
        self.timers.set(tag, request, self.timer_caps).await.map_err(|e| self.timer_error(e))
    }

    async fn cancel(&mut self, tag: String) -> Result<bool, wit_timers::TimerError> {
        self.timers.cancel(&tag).await.map_err(|e| self.timer_error(e))
    }

    async fn list(&mut self) -> Vec<wit_timers::Timer> {
        let schedule = |s: Schedule| match s {
            Schedule::Once { at } => wit_timers::Schedule::At(at),
            Schedule::Every { period_ms } => wit_timers::Schedule::Every(period_ms),
            Schedule::Cron { expression, time_zone } => {
                wit_timers::Schedule::Cron(wit_timers::Cron { expression, time_zone })
            }
        };
        let all = self.timers.list();
        all.into_iter()
            .map(|(tag, t)| wit_timers::Timer { tag, schedule: schedule(t.schedule), next: t.next })
            .collect()
    }
}

impl BotState {
    fn timer_error(&self, e: TimerError) -> wit_timers::TimerError {
        match e {
            TimerError::TooMany(n) => wit_timers::TimerError::TooMany(n),
            TimerError::TooFrequent(ms) => wit_timers::TimerError::TooFrequent(ms),
            TimerError::BadSchedule(why) => wit_timers::TimerError::BadSchedule(why),
            TimerError::BadTag => wit_timers::TimerError::BadTag,
            TimerError::Store(e) => {
                tracing::error!(bot = %self.name, "timer write failed: {}", crate::error_chain(&e));
                wit_timers::TimerError::Unavailable
            }
        }
    }
}

impl wit_config::Host for BotState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.settings.get(&key).map(str::to_owned)
    }
}

/// A guest's stdout/stderr, line by line into its log.
#[derive(Clone)]
struct LogStream {
    log: BotLog,
    stream: LogLevel,
}

impl wasmtime_wasi::cli::IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineWriter { target: self.clone(), line: Vec::new() })
    }
}

struct LineWriter {
    target: LogStream,
    line: Vec<u8>,
}

impl LineWriter {
    fn emit(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        self.target.log.emit(self.target.stream, text.trim_end());
        self.line.clear();
    }
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(mut self: std::pin::Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        for &b in buf {
            if b == b'\n' || self.line.len() >= MAX_LINE {
                self.emit();
            }
            if b != b'\n' {
                self.line.push(b);
            }
        }
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(mut self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if !self.line.is_empty() {
            self.emit();
        }
        Poll::Ready(Ok(()))
    }
}

/// Why a call into a bot failed. The Store is unusable afterwards.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("CPU deadline of {0} ms exceeded")]
    Deadline(u64),
    #[error("trap")]
    Trap(#[source] super::host::Cause),
    #[error("no usable `handle` export")]
    NoHandle(#[source] super::host::Cause),
}

/// Everything needed to make a fresh instance of one bot version.
pub struct BotTemplate {
    pub name: Arc<str>,
    pub engine: Engine,
    pub pre: InstancePre<BotState>,
    pub config: BotConfig,
    pub bridge: Arc<Bridge>,
    pub kv: Arc<Bucket>,
    pub timers: Arc<Timers>,
    pub settings: Arc<Settings>,
    pub logbook: Arc<Logbook>,
    /// Shared by every instance of this version, so a restart does not refill it.
    pub log: BotLog,
    /// The version's HTTP requests in flight (`http_max_in_flight` permits).
    pub http_in_flight: Arc<Semaphore>,
    /// The bot's counters on `/metrics`.
    pub metrics: BotMetrics,
}

/// A live instance in its own Store.
/// A bot's `handle`, in its world's event type (0.1.0 shares 0.2.0's).
#[derive(Clone, Copy)]
enum Handler {
    Current(TypedFunc<(Arc<types::Event>,), ()>),
    V0_2(TypedFunc<(Arc<v0_2::Event>,), ()>),
}

pub struct LiveBot {
    store: Store<BotState>,
    handle: Handler,
    on_timer: Option<TypedFunc<(String,), ()>>,
    cpu_ms: u64,
}

impl BotTemplate {
    /// A new Store and instance, with `init` run if the bot exports it.
    pub async fn instantiate(&self) -> Result<LiveBot, CallError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size((self.config.memory_mb as usize) << 20)
            .instances(64)
            .tables(64)
            .memories(16)
            .build();
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .stdout(LogStream { log: self.log.clone(), stream: LogLevel::Stdout })
            .stderr(LogStream { log: self.log.clone(), stream: LogLevel::Stderr })
            .build();
        let state = BotState {
            name: self.name.clone(),
            bridge: self.bridge.clone(),
            caller: Caller::wasm_bot(self.name.to_string(), self.config.permissions.clone().map(Arc::new)),
            limits,
            rate: RateLimiter::new(self.config.ops_per_second, self.config.ops_burst),
            ops_limited: self.metrics.ops_limited.clone(),
            kv: self.kv.clone(),
            log: self.log.clone(),
            timers: self.timers.clone(),
            timer_caps: Caps { max_timers: self.config.max_timers, min_period_ms: self.config.min_timer_period_ms },
            settings: self.settings.clone(),
            ticks: 0,
            last_tick: std::time::Instant::now(),
            max_ticks: self.config.cpu_ms.div_ceil(TICK_MS),
            wasi,
            http_ctx: WasiHttpCtx::new(),
            http: OutboundHttp::new(&self.config, self.http_in_flight.clone(), self.log.clone(), self.metrics.clone()),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Past the deadline, yield to the runtime each tick; interrupt when the
        // call's budget is spent. A tick that comes after a wait on HTTP (the
        // gap since the last one is long, and a request is in flight) is not
        // counted: waiting is not CPU time.
        store.epoch_deadline_callback(|mut ctx| {
            let s = ctx.data_mut();
            let now = std::time::Instant::now();
            let waited = now.duration_since(s.last_tick) > WAIT_GAP && s.http.busy();
            s.last_tick = now;
            if !waited {
                s.ticks += 1;
            }
            Ok(if s.ticks > s.max_ticks { UpdateDeadline::Interrupt } else { UpdateDeadline::Yield(1) })
        });
        let cpu_ms = self.config.cpu_ms;
        begin_call(&mut store);
        let instance: Instance = self.pre.instantiate_async(&mut store).await.map_err(|e| classify(e, cpu_ms))?;
        let handle = match instance.get_typed_func::<(Arc<types::Event>,), ()>(&mut store, "handle") {
            Ok(f) => Handler::Current(f),
            Err(e) => match instance.get_typed_func::<(Arc<v0_2::Event>,), ()>(&mut store, "handle") {
                Ok(f) => Handler::V0_2(f),
                Err(_) => return Err(CallError::NoHandle(super::host::cause(e))),
            },
        };
        let on_timer = instance.get_typed_func::<(String,), ()>(&mut store, "on-timer").ok();
        let mut live = LiveBot { store, handle, on_timer, cpu_ms };
        // `setup` since 0.2.0; `init` in 0.1.0.
        let setup = instance
            .get_typed_func::<(), ()>(&mut live.store, "setup")
            .or_else(|_| instance.get_typed_func::<(), ()>(&mut live.store, "init"));
        if let Ok(setup) = setup {
            begin_call(&mut live.store);
            setup.call_async(&mut live.store, ()).await.map_err(|e| classify(e, cpu_ms))?;
        }
        Ok(live)
    }
}

/// Gives the next call a fresh CPU budget.
fn begin_call(store: &mut Store<BotState>) {
    store.data_mut().ticks = 0;
    store.data_mut().last_tick = std::time::Instant::now();
    store.set_epoch_deadline(1);
}

fn classify(e: wasmtime::Error, cpu_ms: u64) -> CallError {
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => CallError::Deadline(cpu_ms),
        _ => CallError::Trap(super::host::cause(e)),
    }
}

impl LiveBot {
    /// Delivers one event.
    pub async fn handle(&mut self, event: &Arc<types::Event>) -> Result<(), CallError> {
        begin_call(&mut self.store);
        let cpu_ms = self.cpu_ms;
        match self.handle {
            Handler::Current(f) => {
                // Lowered from a reference, so the bots that share the value
                // never write its count. SAFETY: `&Event` has the component
                // type of `Arc<Event>`, which `f` was checked against.
                let by_ref = unsafe { TypedFunc::<(&types::Event,), ()>::new_unchecked(*f.func()) };
                by_ref.call_async(&mut self.store, (&**event,)).await
            }
            Handler::V0_2(f) => match super::compat::event_v0_2_shared(event) {
                Some(event) => f.call_async(&mut self.store, (event,)).await,
                // An event kind the bot's world does not have.
                None => Ok(()),
            },
        }
        .map_err(|e| classify(e, cpu_ms))
    }

    /// Tells the bot that timer `tag` fired (nothing if it has no `on-timer`).
    pub async fn on_timer(&mut self, tag: String) -> Result<(), CallError> {
        let Some(on_timer) = self.on_timer else { return Ok(()) };
        begin_call(&mut self.store);
        let cpu_ms = self.cpu_ms;
        on_timer.call_async(&mut self.store, (tag,)).await.map_err(|e| classify(e, cpu_ms))
    }
}
