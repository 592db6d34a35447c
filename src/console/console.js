// botbridge dev console: chat through the sim world over the WebSocket
// protocol (/ws), or as the account itself (paced, on a real account too),
// a live bots panel from /api/bots/events, and each account's send queue.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const withToken = (path) => (token ? `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : path);
const $ = (id) => document.getElementById(id);

const state = {
  ws: null,
  nextId: 1,
  pending: new Map(), // call id -> {resolve, reject}
  account: null,
  chat: null, // {kind: "group"|"friend", id, name}
  chats: new Map(), // "group:ID" | "friend:ID" -> [entry]
  bySource: new Map(), // MessageSource id -> entry
  members: new Map(), // group id -> [member]
  logs: [],
  bots: [],
  lastSeq: null, // the newest event seen, so a reconnect resumes after it
  real: new Set(), // accounts with a pacer (real ones, by default): the console speaks as the account
};

/** The speaker value that means the account itself. */
const ACCOUNT = "account";

const MAX_ENTRIES = 500;
const MAX_LOG = 1000;

// ---- the protocol ----------------------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // The first connection replays what the bridge still holds (the recent
  // conversation); a reconnect resumes after the last event seen.
  const since = state.lastSeq ?? 0;
  const ws = new WebSocket(withToken(`${scheme}://${location.host}/ws?outgoing=1&name=console&since=${since}`));
  state.ws = ws;
  ws.onmessage = (m) => {
    let frame;
    try {
      frame = JSON.parse(m.data);
    } catch {
      return;
    }
    onFrame(frame);
  };
  ws.onclose = () => {
    setConnection("offline");
    for (const { reject } of state.pending.values()) reject(new Error("disconnected"));
    state.pending.clear();
    setTimeout(connect, 1000);
  };
}

function call(type, content) {
  const id = `c${state.nextId++}`;
  return new Promise((resolve, reject) => {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return reject(new Error("not connected"));
    state.pending.set(id, { resolve, reject });
    state.ws.send(JSON.stringify({ type, id, content }));
  });
}

function onFrame(frame) {
  if (typeof frame.seq === "number") state.lastSeq = Math.max(state.lastSeq ?? 0, frame.seq);
  switch (frame.type) {
    case "hello":
      setConnection("online");
      setAccounts(frame.bots);
      break;
    case "result": {
      const waiter = state.pending.get(frame.id);
      if (!waiter) return;
      state.pending.delete(frame.id);
      if (frame.ok) waiter.resolve(frame.data);
      else waiter.reject(new Error(`${frame.error.code}: ${frame.error.message}`));
      break;
    }
    case "msg":
      onMessage(frame);
      break;
    case "outgoing":
      onOutgoing(frame);
      break;
    case "revoke":
      onRevoke(frame);
      break;
    case "group":
      onGroupEvent(frame);
      break;
    case "user":
      if (["friendAdded", "friendRemoved", "groupJoined", "groupLeft"].includes(frame.data.type)) loadChats();
      break;
  }
}

function setConnection(status) {
  const badge = $("connection");
  badge.textContent = status;
  badge.className = `badge ${status}`;
}

// ---- conversations -----------------------------------------------------------

function setAccounts(accounts) {
  const select = $("account");
  select.replaceChildren(...accounts.map((a) => new Option(String(a), String(a))));
  if (!accounts.includes(state.account)) state.account = accounts[0] ?? null;
  select.value = String(state.account);
  loadChats();
}

async function loadChats() {
  if (state.account === null) return;
  try {
    const [groups, friends] = await Promise.all([
      call("ListGroups", { bot: state.account }),
      call("ListFriends", { bot: state.account }),
    ]);
    renderChatList("groups", groups.groups.map((g) => ({ kind: "group", id: g.id, name: g.name })));
    renderChatList("friends", friends.friends.map((f) => ({ kind: "friend", id: f.id, name: f.nick })));
    if (!state.chat && groups.groups.length) openChat({ kind: "group", id: groups.groups[0].id, name: groups.groups[0].name });
  } catch (e) {
    showError(e.message);
  }
}

function renderChatList(listId, chats) {
  $(listId).replaceChildren(
    ...chats.map((chat) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = `${chat.name} (${chat.id})`;
      button.dataset.chat = `${chat.kind}:${chat.id}`;
      button.setAttribute("aria-current", String(isOpen(chat)));
      button.onclick = () => openChat(chat);
      li.append(button);
      return li;
    }),
  );
}

const keyOf = (chat) => `${chat.kind}:${chat.id}`;
const isOpen = (chat) => state.chat !== null && keyOf(state.chat) === keyOf(chat);

async function openChat(chat) {
  state.chat = chat;
  for (const b of document.querySelectorAll("nav button")) b.setAttribute("aria-current", String(b.dataset.chat === keyOf(chat)));
  $("chat-title").textContent = chat.kind === "group" ? `Group ${chat.name} (${chat.id})` : `Friend ${chat.name} (${chat.id})`;
  renderMessages();
  const speaker = $("speaker");
  // The account itself speaks through the bridge (and its pacer); on a real
  // account that is the only voice, simulated members are for the sim world.
  const asAccount = new Option(`the account (${state.account})`, ACCOUNT);
  if (chat.kind === "group") {
    try {
      const { members } = await call("ListMembers", { bot: state.account, group: chat.id });
      state.members.set(chat.id, members);
      speaker.replaceChildren(...members.map((m) => new Option(`${m.nameCardOrNick} (${m.id}, ${m.permission})`, String(m.id))), asAccount);
    } catch (e) {
      showError(e.message);
    }
  } else {
    speaker.replaceChildren(new Option(`${chat.name} (${chat.id})`, String(chat.id)), asAccount);
  }
  if (state.real.has(state.account)) speaker.value = ACCOUNT;
  $("text").disabled = false;
  $("send").disabled = false;
  $("text").focus();
}

function entriesOf(key) {
  if (!state.chats.has(key)) state.chats.set(key, []);
  return state.chats.get(key);
}

function addEntry(key, entry) {
  const entries = entriesOf(key);
  entries.push(entry);
  if (entries.length > MAX_ENTRIES) entries.shift();
  if (entry.sourceId) state.bySource.set(entry.sourceId, entry);
  if (state.chat && keyOf(state.chat) === key) {
    $("messages").append(renderEntry(entry));
    $("messages").lastElementChild.scrollIntoView({ block: "end" });
  }
}

function renderMessages() {
  const entries = state.chat ? entriesOf(keyOf(state.chat)) : [];
  $("messages").replaceChildren(...entries.map(renderEntry));
}

function renderEntry(entry) {
  const li = document.createElement("li");
  li.className = entry.kind + (entry.recalled ? " recalled" : "");
  if (entry.sourceId) li.dataset.source = entry.sourceId;
  if (entry.who) {
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = entry.who;
    li.append(who);
  }
  const body = document.createElement("span");
  body.className = "body";
  body.textContent = entry.text;
  li.append(body);
  if (entry.meta) {
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = entry.meta;
    li.append(meta);
  }
  entry.element = li;
  return li;
}

function chainText(chain) {
  return chain
    .map((e) => {
      switch (e.type) {
        case "MessageSource":
          return "";
        case "Plain":
          return e.msg;
        case "At":
          return `@${e.display || e.target}`;
        case "AtAll":
          return "@all";
        case "Face":
          return `[face ${e.id}]`;
        case "Quote":
          return "↩ ";
        default:
          return `[${e.type}]`;
      }
    })
    .join("");
}

const sourceOf = (chain) => chain.find((e) => e.type === "MessageSource")?.id;
const time = (seconds) => new Date(seconds * 1000).toLocaleTimeString();

function onMessage(frame) {
  const d = frame.data;
  let key;
  let meta = time(frame.time);
  if (d.type === "GroupMessage") key = `group:${d.group.id}`;
  else if (d.type === "FriendMessage") key = `friend:${d.sender.id}`;
  else {
    key = `group:${d.group.id}`;
    meta += " · private (temp)";
  }
  const who = d.sender.nameCardOrNick ?? d.sender.nick ?? String(d.sender.id);
  addEntry(key, { kind: "msg", who: `${who} (${d.sender.id})`, text: chainText(d.message), sourceId: sourceOf(d.message), meta });
}

function onOutgoing(frame) {
  const d = frame.data;
  const t = d.target;
  const key = t.type === "friend" ? `friend:${t.friend}` : `group:${t.group}`;
  let meta = `${time(frame.time)} · account ${frame.bot}`;
  if (t.type === "temp") meta += ` · private to ${t.user}`;
  addEntry(key, { kind: "bot", who: `${d.by} →`, text: chainText(d.message), sourceId: d.sourceId, meta });
}

function onRevoke(frame) {
  const d = frame.data;
  const entry = state.bySource.get(d.msgID);
  if (entry) {
    entry.recalled = true;
    entry.element?.classList.add("recalled");
  }
  const key = d.type === "group" ? `group:${d.channel}` : `friend:${d.channel}`;
  addEntry(key, { kind: "system", text: `${d.revoker} recalled a message of ${d.revokee}` });
}

function nameIn(group, who) {
  const m = (state.members.get(group) ?? []).find((m) => m.id === who);
  return m ? `${m.nameCardOrNick} (${who})` : String(who);
}

function onGroupEvent(frame) {
  const d = frame.data;
  const key = `group:${d.group}`;
  switch (d.type) {
    case "mute":
      if (d.who === 0) addEntry(key, { kind: "system", text: d.duration ? `${d.operator} muted the whole group` : `${d.operator} lifted the group mute` });
      else addEntry(key, { kind: "system", text: d.duration ? `${nameIn(d.group, d.who)} muted for ${d.duration} s by ${d.operator}` : `${nameIn(d.group, d.who)} may speak again` });
      break;
    case "memberJoined":
      addEntry(key, { kind: "system", text: `${d.who} joined` });
      break;
    case "memberLeft":
      addEntry(key, { kind: "system", text: `${nameIn(d.group, d.who)} left` });
      break;
    case "admin":
      addEntry(key, { kind: "system", text: `${nameIn(d.group, d.who)} is ${d.status ? "now" : "no longer"} an admin` });
      break;
    case "joinRequest":
      addEntry(key, { kind: "system", text: `${d.who} asks to join` });
      break;
    case "poke":
      addEntry(key, { kind: "system", text: `${nameIn(d.group, d.from)} poked ${nameIn(d.group, d.target)}` });
      break;
    case "reaction":
      addEntry(key, { kind: "system", text: `${nameIn(d.group, d.who)} ${d.add ? "reacted" : "took back a reaction"} (face ${d.emoji})` });
      break;
    case "essence":
      addEntry(key, { kind: "system", text: `${nameIn(d.group, d.operator)} ${d.set ? "made" : "unmade"} an essence message` });
      break;
    case "memberCard":
      addEntry(key, { kind: "system", text: `${d.who} is now called ${d.card || "by their nick"}` });
      break;
    case "fileUpload":
      addEntry(key, { kind: "system", text: `${nameIn(d.group, d.who)} uploaded ${d.file.name} (${d.file.size} bytes)` });
      break;
    case "honor":
      addEntry(key, { kind: "system", text: `${nameIn(d.group, d.who)} got the ${d.honor} honor` });
      break;
    case "title":
      addEntry(key, { kind: "system", text: `${nameIn(d.group, d.who)} got the title ${d.title}` });
      break;
  }
  if (state.chat && state.chat.kind === "group" && state.chat.id === d.group && d.type !== "mute") openChat(state.chat);
}

async function send(event) {
  event.preventDefault();
  const input = $("text");
  const text = input.value;
  if (!text.trim() || !state.chat) return;
  const speaker = $("speaker").value;
  const message = [{ type: "Plain", msg: text }];
  const group = state.chat.kind === "group";
  const [type, content] =
    speaker === ACCOUNT
      ? group
        ? ["SendToGroup", { bot: state.account, group: state.chat.id, message }]
        : ["SendToFriend", { bot: state.account, friend: state.chat.id, message }]
      : group
        ? ["SimMessage", { bot: state.account, group: state.chat.id, sender: Number(speaker), message }]
        : ["SimMessage", { bot: state.account, friend: state.chat.id, message }];
  // The input clears at once: a paced send answers when the account sent it.
  input.value = "";
  try {
    await call(type, content);
    input.value = "";
    showError("");
  } catch (e) {
    showError(e.message);
  }
  input.focus();
}

function showError(text) {
  $("error").textContent = text;
}

// ---- send queues -----------------------------------------------------------

/** Polls each account's pacer: a queue that builds up shows at once. */
async function watchPacing() {
  try {
    const response = await fetch(withToken("/api/accounts"));
    if (response.ok) renderPacing(await response.json());
  } catch (e) {
    // The next poll tries again.
  }
  setTimeout(watchPacing, 500);
}

function renderPacing(accounts) {
  state.real = new Set(accounts.filter((a) => a.pacing).map((a) => a.account));
  const items = accounts.map((a) => {
    const li = document.createElement("li");
    li.dataset.account = String(a.account);
    li.className = a.pacing && a.pacing.queued > 0 ? "busy" : "";
    li.textContent = a.pacing
      ? `${a.account}: ${a.pacing.queued} waiting (of ${a.pacing.queue})${a.online ? "" : ", offline"}`
      : `${a.account}: not paced`;
    return li;
  });
  $("pacing").replaceChildren(...items);
}

// ---- the bots panel ------------------------------------------------------------

function watchBots() {
  const events = new EventSource(withToken("/api/bots/events"));
  events.addEventListener("bots", (e) => renderBots(JSON.parse(e.data)));
  events.addEventListener("log", (e) => addLog(JSON.parse(e.data)));
  // EventSource reconnects by itself; the first frames after that repeat the kept lines.
  events.onopen = () => {
    state.logs = [];
    unshown = [];
    renderLog();
  };
}

function renderBots(bots) {
  state.bots = bots;
  const list = $("bots");
  if (!bots.length) {
    const li = document.createElement("li");
    li.textContent = "No bots. Drop NAME.wasm into the bots folder.";
    list.replaceChildren(li);
  } else {
    list.replaceChildren(...bots.map(renderBot));
  }
  const filter = $("log-filter");
  const chosen = filter.value;
  filter.replaceChildren(new Option("all bots", ""), ...bots.map((b) => new Option(b.name, b.name)));
  filter.value = bots.some((b) => b.name === chosen) ? chosen : "";
}

function renderBot(bot) {
  const li = document.createElement("li");
  li.dataset.bot = bot.name;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = bot.name;
  const badge = document.createElement("span");
  badge.className = `badge state ${bot.state}`;
  badge.textContent = bot.state;
  li.append(name, badge);
  const detail = document.createElement("div");
  detail.className = "detail";
  if (bot.version) {
    const version = document.createElement("span");
    version.className = "version";
    version.title = "content hash of the running file";
    version.textContent = bot.version;
    detail.append("version ", version, ` · loaded ${new Date(bot.loadedAt).toLocaleTimeString()} · ${bot.handled} event${bot.handled === 1 ? "" : "s"}`);
    if (bot.failures) detail.append(` · ${bot.failures} failures, ${bot.restarts} restarts`);
  } else {
    detail.textContent = "not running";
  }
  li.append(detail);
  li.append(renderKept(bot));
  for (const why of [bot.reason, bot.rejected && bot.rejected !== bot.reason ? `newest file refused: ${bot.rejected}` : null, bot.state === "running" ? bot.lastError && `last error: ${bot.lastError}` : null]) {
    if (!why) continue;
    const p = document.createElement("div");
    p.className = "why";
    p.textContent = why;
    li.append(p);
  }
  return li;
}

// The kept versions, newest first, each but the running one with a rollback button.
function renderKept(bot) {
  const list = document.createElement("ul");
  list.className = "kept";
  list.setAttribute("aria-label", `kept versions of ${bot.name}`);
  for (const v of [...(bot.versions ?? [])].reverse()) {
    const li = document.createElement("li");
    li.dataset.version = v.version;
    const code = document.createElement("code");
    code.textContent = v.version;
    li.append(code, ` ${new Date(v.savedAt).toLocaleString()}`);
    if (v.version === bot.version) {
      li.append(" · running");
    } else {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "rollback";
      button.textContent = "roll back to this";
      button.onclick = () => admin("POST", `/api/bots/${encodeURIComponent(bot.name)}/rollback`, JSON.stringify({ version: v.version }), "application/json");
      li.append(" ", button);
    }
    list.append(li);
  }
  return list;
}

// ---- deploying (the admin API) -------------------------------------------------

const adminToken = () => $("admin-token").value.trim();

function deployStatus(text, ok) {
  const status = $("deploy-status");
  status.textContent = text;
  status.className = ok ? "ok" : "bad";
}

async function admin(method, path, body, type) {
  if (!adminToken()) return deployStatus("Enter the admin token first.", false);
  try {
    const response = await fetch(path, { method, body, headers: { Authorization: `Bearer ${adminToken()}`, "Content-Type": type } });
    const answer = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (response.ok && answer.ok) deployStatus(`${answer.name}: ${answer.state} version ${answer.version}`, true);
    else deployStatus(`Refused: ${answer.error ?? `HTTP ${response.status}`}`, false);
  } catch (e) {
    deployStatus(`Failed: ${e.message}`, false);
  }
}

function deployFile(file) {
  if (!file) return;
  const name = file.name.replace(/\.wasm$/i, "");
  deployStatus(`Uploading ${name}…`, true);
  admin("PUT", `/api/bots/${encodeURIComponent(name)}`, file, "application/wasm");
}

function setupDeploy() {
  const zone = $("deploy");
  const token = $("admin-token");
  token.value = sessionStorage.getItem("botbridge-admin-token") ?? "";
  token.addEventListener("change", () => sessionStorage.setItem("botbridge-admin-token", adminToken()));
  zone.addEventListener("submit", (e) => e.preventDefault());
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    deployFile(e.dataTransfer.files[0]);
  });
  $("upload-file").addEventListener("change", (e) => {
    deployFile(e.target.files[0]);
    e.target.value = "";
  });
}

// Lines are shown once per animation frame, so a bot that logs in a loop
// costs one layout per frame, not one per line.
let unshown = [];

function addLog(line) {
  state.logs.push(line);
  if (state.logs.length > MAX_LOG) state.logs.shift();
  if (unshown.push(line) === 1) requestAnimationFrame(showLog);
}

function showLog() {
  const filter = $("log-filter").value;
  const lines = unshown.filter((l) => !filter || l.bot === filter).slice(-MAX_LOG);
  unshown = [];
  if (!lines.length) return;
  const log = $("log");
  log.append(...lines.map(renderLine));
  while (log.childElementCount > MAX_LOG) log.firstElementChild.remove();
  log.lastElementChild.scrollIntoView({ block: "end" });
}

function renderLine(line) {
  const li = document.createElement("li");
  li.className = line.level;
  li.dataset.bot = line.bot;
  li.textContent = `${new Date(line.time).toLocaleTimeString()} ${line.bot} ${line.level}: ${line.message}`;
  return li;
}

function renderLog() {
  const filter = $("log-filter").value;
  $("log").replaceChildren(...state.logs.filter((l) => !filter || l.bot === filter).map(renderLine));
}

// ---- start -----------------------------------------------------------------------

$("composer").addEventListener("submit", send);
$("account").addEventListener("change", (e) => {
  state.account = Number(e.target.value);
  state.chat = null;
  loadChats();
});
$("log-filter").addEventListener("change", renderLog);
setupDeploy();
watchPacing();
connect();
watchBots();
