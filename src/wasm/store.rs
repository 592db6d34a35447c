//! One bot's Store: its data (`BotState`), the host side of the imports it may
//! call, and a live instance with its limits applied to every call.

use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use wasmtime::component::{Instance, InstancePre, ResourceTable, TypedFunc};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::botbridge::bot::{kv, log, operations, types};
use super::convert;
use super::kv::{Bucket, KvError};
use super::limits::{BotConfig, LogGate, RateLimiter};
use super::logbook::{LogLevel, Logbook, MAX_LINE, cut};
use crate::bridge::{Bridge, Caller};
use crate::schema::{self as s, ErrorCode, OpData, OpError, Operation};

/// Milliseconds per epoch tick: the CPU deadline's resolution.
pub const TICK_MS: u64 = 5;

/// What a bot's Store holds.
pub struct BotState {
    name: Arc<str>,
    bridge: Arc<Bridge>,
    caller: Caller,
    limits: StoreLimits,
    rate: RateLimiter,
    kv: Arc<Bucket>,
    log: BotLog,
    /// Ticks used by the current call, and how many it may use.
    ticks: u64,
    max_ticks: u64,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for BotState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl BotState {
    async fn op(&mut self, op: Operation) -> Result<OpData, types::Error> {
        if !self.rate.try_acquire() {
            tracing::debug!(bot = %self.name, op = op.name(), "rate limited");
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
        self.send(Operation::Reply(s::ReplyContent {
            id: s::ReplyKey(reply_key),
            message: convert::chain_from(message),
        }))
        .await
    }

    async fn send_to_group(
        &mut self,
        bot: Option<i64>,
        group: i64,
        message: Vec<types::Element>,
    ) -> Result<types::Sent, types::Error> {
        let message = convert::chain_from(message);
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
        let message = convert::chain_from(message);
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
        group: i64,
        member: i64,
        seconds: i64,
    ) -> Result<(), types::Error> {
        self.done(Operation::MuteMember(s::MuteMemberContent {
            account: bot.map(s::AccountId),
            group: s::GroupId(group),
            member: s::UserId(member),
            time: seconds,
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
}

impl BotLog {
    fn emit(&self, level: LogLevel, message: &str) {
        let bot = &*self.bot;
        let Some(dropped) = self.gate.lock().admit() else {
            self.logbook.note_dropped(bot);
            return;
        };
        if dropped > 0 {
            tracing::warn!(bot, dropped, "log rate limit: {dropped} lines dropped");
            self.logbook.record(bot, LogLevel::Warn, &format!("log rate limit: {dropped} lines dropped"));
        }
        let message = cut(message);
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
    pub logbook: Arc<Logbook>,
    /// Shared by every instance of this version, so a restart does not refill it.
    pub log: BotLog,
}

/// A live instance in its own Store.
pub struct LiveBot {
    store: Store<BotState>,
    handle: TypedFunc<(types::Event,), ()>,
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
            kv: self.kv.clone(),
            log: self.log.clone(),
            ticks: 0,
            max_ticks: self.config.cpu_ms.div_ceil(TICK_MS),
            wasi,
            table: ResourceTable::new(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Past the deadline, yield to the runtime each tick; interrupt when the call's budget is spent.
        store.epoch_deadline_callback(|mut ctx| {
            let s = ctx.data_mut();
            s.ticks += 1;
            Ok(if s.ticks > s.max_ticks { UpdateDeadline::Interrupt } else { UpdateDeadline::Yield(1) })
        });
        let cpu_ms = self.config.cpu_ms;
        begin_call(&mut store);
        let instance: Instance = self.pre.instantiate_async(&mut store).await.map_err(|e| classify(e, cpu_ms))?;
        let handle = instance
            .get_typed_func::<(types::Event,), ()>(&mut store, "handle")
            .map_err(|e| CallError::NoHandle(super::host::cause(e)))?;
        let mut live = LiveBot { store, handle, cpu_ms };
        if let Ok(init) = instance.get_typed_func::<(), ()>(&mut live.store, "init") {
            begin_call(&mut live.store);
            init.call_async(&mut live.store, ()).await.map_err(|e| classify(e, cpu_ms))?;
        }
        Ok(live)
    }
}

/// Gives the next call a fresh CPU budget.
fn begin_call(store: &mut Store<BotState>) {
    store.data_mut().ticks = 0;
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
    pub async fn handle(&mut self, event: types::Event) -> Result<(), CallError> {
        begin_call(&mut self.store);
        let cpu_ms = self.cpu_ms;
        self.handle.call_async(&mut self.store, (event,)).await.map_err(|e| classify(e, cpu_ms))
    }
}
