// botbridge's JavaScript SDK: a thin layer over the `botbridge:bot@0.3.0`
// world, in the spirit of the Rust one. Types are in botbridge.d.ts.
//
//   import { bot, kv } from "../sdk-js/botbridge.js";
//   export const { setup, handle, onTimer } = bot({
//     commands: { echo: (message, text) => message.reply(text) },
//   });
//
// IDs are plain numbers here (QQ IDs fit in a double); the world's s64 and
// u64 values are converted at this edge. Works under componentize-qjs
// (QuickJS, no TextEncoder) and componentize-js.

import * as operations from "botbridge:bot/operations@0.3.0";
import { log as witLog } from "botbridge:bot/log@0.3.0";
import * as witKv from "botbridge:bot/kv@0.3.0";
import * as witTimers from "botbridge:bot/timers@0.3.0";
import { get as configGet } from "botbridge:bot/config@0.3.0";

// ── text and bytes ────────────────────────────────────────────────────

/** UTF-8 bytes of a string. */
export function utf8Encode(text) {
  const out = [];
  for (const ch of text) {
    let c = ch.codePointAt(0);
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return new Uint8Array(out);
}

/** A string from UTF-8 bytes (invalid sequences become U+FFFD). */
export function utf8Decode(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    const need = b < 0x80 ? 0 : b >= 0xf0 ? 3 : b >= 0xe0 ? 2 : b >= 0xc0 ? 1 : -1;
    if (need === 0) {
      out += String.fromCharCode(b);
      i += 1;
      continue;
    }
    if (need < 0 || i + need >= bytes.length) {
      out += "\ufffd";
      i += 1;
      continue;
    }
    let c = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) c = (c << 6) | (bytes[i + k] & 63);
    out += String.fromCodePoint(c);
    i += need + 1;
  }
  return out;
}

// ── errors ────────────────────────────────────────────────────────────

/** An operation the bridge refused: `code` is one of the protocol's error codes. */
export class BotError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

/** Calls a world function whose `result` error is thrown, as a BotError or plain Error. */
function attempt(call) {
  try {
    return call();
  } catch (e) {
    const p = e && (e.payload ?? e.val ?? e);
    if (p && typeof p === "object" && "code" in p) throw new BotError(p.code, p.message);
    throw e instanceof Error ? e : new Error(typeof p === "string" ? p : JSON.stringify(p));
  }
}

// ── logs, kv, config, timers ──────────────────────────────────────────

const say = (level) => (...parts) => witLog(level, parts.map(String).join(" "));
export const log = { trace: say("trace"), debug: say("debug"), info: say("info"), warn: say("warn"), error: say("error") };

/** The bot's own store, kept across hot reloads and restarts. */
export const kv = {
  get: (key) => witKv.get(key),
  set: (key, bytes) => attempt(() => witKv.set(key, bytes)),
  delete: (key) => witKv.delete(key),
  list: (prefix = "") => witKv.list(prefix),
  getText(key) {
    const raw = witKv.get(key);
    return raw === undefined || raw === null ? undefined : utf8Decode(raw);
  },
  setText: (key, text) => kv.set(key, utf8Encode(text)),
  getJson(key) {
    const text = kv.getText(key);
    try {
      return text === undefined ? undefined : JSON.parse(text);
    } catch {
      return undefined;
    }
  },
  setJson: (key, value) => kv.setText(key, JSON.stringify(value)),
  /** Adds one to a counter kept as text; returns the new value. */
  increment(key) {
    const next = Number(kv.getText(key) ?? "0") + 1;
    kv.setText(key, String(next));
    return next;
  },
};

/** `[config]` and `[secrets]` of the bot's NAME.toml. */
export const config = {
  get: (key) => configGet(key) ?? undefined,
  getOr: (key, fallback) => configGet(key) ?? fallback,
};

function fromSchedule(s) {
  switch (s.tag) {
    case "at": return { at: Number(s.val) };
    case "every": return { everyMs: Number(s.val) };
    case "cron": return { cron: s.val.expression, timeZone: s.val.timeZone ?? undefined };
    default: return { afterMs: Number(s.val) };
  }
}

/** Timers call the bot's `timer(tag)` handler, one call at a time with its events. */
export const timers = {
  after: (tag, ms) => attempt(() => witTimers.set(tag, { tag: "after", val: BigInt(ms) })),
  at: (tag, unixMs) => attempt(() => witTimers.set(tag, { tag: "at", val: BigInt(unixMs) })),
  every: (tag, ms) => attempt(() => witTimers.set(tag, { tag: "every", val: BigInt(ms) })),
  cron: (tag, expression, timeZone) =>
    attempt(() => witTimers.set(tag, { tag: "cron", val: { expression, timeZone } })),
  cancel: (tag) => attempt(() => witTimers.cancel(tag)),
  list: () => witTimers.list().map((t) => ({ tag: t.tag, next: Number(t.next), ...fromSchedule(t.schedule) })),
};

// ── message chains ────────────────────────────────────────────────────

/** Builds a message chain: `chain().at(123).text(" hi")`. A string is a chain too. */
export class Chain {
  constructor() {
    this.elements = [];
  }
  text(text) {
    this.elements.push({ tag: "plain", val: String(text) });
    return this;
  }
  at(user, display = "") {
    this.elements.push({ tag: "at", val: { target: BigInt(user), display } });
    return this;
  }
  atAll() {
    this.elements.push({ tag: "at-all" });
    return this;
  }
  face(id) {
    this.elements.push({ tag: "face", val: BigInt(id) });
    return this;
  }
  image(url) {
    this.elements.push({ tag: "image", val: { id: "", url } });
    return this;
  }
}

export const chain = () => new Chain();

function elementsOf(message) {
  if (message instanceof Chain) return message.elements;
  return [{ tag: "plain", val: String(message) }];
}

function sent(s) {
  return { receiptId: s.receiptId, sourceId: s.sourceId };
}

/** Sends to a group or a friend of the bridge's account. */
export const send = {
  toGroup: (group, message) => sent(attempt(() => operations.sendToGroup(undefined, BigInt(group), elementsOf(message)))),
  toFriend: (friend, message) =>
    sent(attempt(() => operations.sendToFriend(undefined, BigInt(friend), elementsOf(message)))),
};

/** What an admin does in a group (world 0.3.0). */
export const group = {
  kick: (group, member, rejectRejoin = false) =>
    attempt(() => operations.kickMember(undefined, BigInt(group), BigInt(member), rejectRejoin)),
  muteAll: (group, enable) => attempt(() => operations.muteAll(undefined, BigInt(group), enable)),
  setCard: (group, member, card) =>
    attempt(() => operations.setMemberCard(undefined, BigInt(group), BigInt(member), card)),
  setAdmin: (group, member, enable) =>
    attempt(() => operations.setGroupAdmin(undefined, BigInt(group), BigInt(member), enable)),
};

/** Pokes `target` in `group`, or privately when `group` is undefined. */
export function poke(target, group) {
  attempt(() => operations.sendPoke(undefined, group === undefined ? undefined : BigInt(group), BigInt(target)));
}

/** A message by its source ID: `{chat, channel, group, sender, senderName, time, message}`. */
export function getMessage(sourceId) {
  return attempt(() => operations.getMessage(sourceId));
}

/**
 * Sends a forwarded message: `nodes` are `{sender, name, text}` (or
 * `message`, a list of node elements); `to` is `{group}` or `{friend}`.
 */
export function forward(to, nodes) {
  const wit = nodes.map((n) => ({
    sender: BigInt(n.sender),
    name: n.name ?? "",
    time: BigInt(n.time ?? 0),
    message: n.message ?? [{ tag: "plain", val: String(n.text ?? "") }],
  }));
  const g = to.group === undefined ? undefined : BigInt(to.group);
  const f = to.friend === undefined ? undefined : BigInt(to.friend);
  return sent(attempt(() => operations.sendForward(undefined, g, f, wit)));
}

// ── events ────────────────────────────────────────────────────────────

/** A received message: where, from whom, its text, and how to answer it. */
export class Message {
  constructor(event, kind, m) {
    this.seq = Number(event.seq);
    this.time = Number(event.time);
    this.account = Number(event.bot);
    /** "group", "friend" or "temp". */
    this.scene = kind;
    this.group = m.group ? { id: Number(m.group.id), name: m.group.name } : undefined;
    this.sender = { id: Number(m.sender.id), name: m.sender.nameCardOrNick ?? m.sender.nick };
    this.replyKey = m.replyKey;
    this.elements = m.message;
  }
  /** The plain text of the message. */
  text() {
    return this.elements.filter((e) => e.tag === "plain").map((e) => e.val).join("");
  }
  /** For `/name rest`, the rest (maybe ""); otherwise undefined. */
  command(name) {
    const text = this.text().trimStart();
    if (!text.startsWith("/" + name)) return undefined;
    const rest = text.slice(name.length + 1);
    return rest === "" || /^\s/.test(rest) ? rest.trim() : undefined;
  }
  sourceId() {
    const first = this.elements[0];
    return first && first.tag === "message-source" ? first.val : undefined;
  }
  reply(message) {
    return sent(attempt(() => operations.reply(this.replyKey, elementsOf(message))));
  }
  /** Replies, and logs a refusal instead of throwing it. */
  replyOrLog(message) {
    try {
      return this.reply(message);
    } catch (e) {
      log.warn(`reply failed: ${e.message}`);
    }
  }
  recall() {
    attempt(() => operations.recall(this.sourceId()));
  }
  /** Mutes whoever sent this group message, also an anonymous sender. */
  muteSender(seconds) {
    attempt(() => operations.muteMember(undefined, { tag: "sender-of", val: this.sourceId() }, BigInt(seconds)));
  }
}

/**
 * Makes the world's exports from handlers:
 *  - `setup()`: once per fresh instance;
 *  - `commands`: `{ name(message, rest) }` for `/name rest`;
 *  - `message(message)`: every message that is not one of the commands;
 *  - `event(raw)`: every other event, as the world gives it;
 *  - `timer(tag)`: a timer fired.
 * A handler that throws is logged; the bot keeps running. A handler may be
 * `async` (to `await fetch(...)`) under componentize-js, which runs the
 * event loop until the returned promise settles.
 */
export function bot(handlers) {
  const guard = (what, f) => {
    const fail = (e) => log.error(`${what}: ${e && e.message ? e.message : e}`);
    try {
      const result = f();
      return result && typeof result.then === "function" ? result.catch(fail) : undefined;
    } catch (e) {
      fail(e);
    }
  };
  return {
    setup: () => handlers.setup && guard("setup", () => handlers.setup()),
    handle(event) {
      if (event.data.tag !== "msg") {
        return handlers.event && guard("event", () => handlers.event(event));
      }
      const message = new Message(event, event.data.val.tag, event.data.val.val);
      for (const [name, handler] of Object.entries(handlers.commands ?? {})) {
        const rest = message.command(name);
        if (rest !== undefined) return guard(`/${name}`, () => handler(message, rest));
      }
      return handlers.message && guard("message", () => handlers.message(message));
    },
    onTimer: (tag) => handlers.timer && guard(`timer ${tag}`, () => handlers.timer(tag)),
  };
}
