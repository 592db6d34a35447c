// Types of botbridge's JavaScript SDK (botbridge.js), for editors and `tsc`.

/** One element of a message chain, as the `botbridge:bot@0.3.0` world has it. */
export type Element =
  | { tag: "message-source"; val: string }
  | { tag: "plain"; val: string }
  | { tag: "at"; val: { target: bigint; display: string } }
  | { tag: "at-all" }
  | { tag: "face"; val: bigint }
  | { tag: "image" | "flash-image"; val: { id: string; url: string } }
  | { tag: string; val?: unknown };

/** What may be sent: a Chain, or any value (sent as its text). */
export type Sendable = Chain | string | number;

/** The IDs of a sent message: `receiptId` recalls it, `sourceId` quotes it. */
export interface Sent {
  receiptId: string;
  sourceId: string;
}

export declare function utf8Encode(text: string): Uint8Array;
export declare function utf8Decode(bytes: Uint8Array): string;

/** An operation the bridge refused; `code` is a protocol error code such as "rate-limited". */
export declare class BotError extends Error {
  code: string;
}

export declare const log: {
  trace(...parts: unknown[]): void;
  debug(...parts: unknown[]): void;
  info(...parts: unknown[]): void;
  warn(...parts: unknown[]): void;
  error(...parts: unknown[]): void;
};

export declare const kv: {
  get(key: string): Uint8Array | undefined;
  set(key: string, bytes: Uint8Array): void;
  delete(key: string): void;
  list(prefix?: string): string[];
  getText(key: string): string | undefined;
  setText(key: string, text: string): void;
  getJson<T = unknown>(key: string): T | undefined;
  setJson(key: string, value: unknown): void;
  increment(key: string): number;
};

export declare const config: {
  get(key: string): string | undefined;
  getOr(key: string, fallback: string): string;
};

export interface Timer {
  tag: string;
  /** Unix milliseconds of the next firing. */
  next: number;
  at?: number;
  afterMs?: number;
  everyMs?: number;
  cron?: string;
  timeZone?: string;
}

/** Throws an Error naming the cap or the bad schedule when refused. */
export declare const timers: {
  after(tag: string, ms: number): void;
  at(tag: string, unixMs: number): void;
  every(tag: string, ms: number): void;
  /** Five-field cron; `timeZone` an IANA name such as "Asia/Shanghai" (default UTC). */
  cron(tag: string, expression: string, timeZone?: string): void;
  cancel(tag: string): boolean;
  list(): Timer[];
};

export declare class Chain {
  elements: Element[];
  text(text: string | number): this;
  at(user: number, display?: string): this;
  atAll(): this;
  face(id: number): this;
  image(url: string): this;
}

export declare function chain(): Chain;

export declare const send: {
  toGroup(group: number, message: Sendable): Sent;
  toFriend(friend: number, message: Sendable): Sent;
};

/** What an admin does in a group (world 0.3.0). */
export declare const group: {
  kick(group: number, member: number, rejectRejoin?: boolean): void;
  muteAll(group: number, enable: boolean): void;
  setCard(group: number, member: number, card: string): void;
  setAdmin(group: number, member: number, enable: boolean): void;
};

/** Pokes `target` in `group`, or privately when `group` is left out. */
export declare function poke(target: number, group?: number): void;

export interface FetchedMessage {
  chat: "group" | "friend" | "temp";
  channel: bigint;
  group: bigint;
  sender: bigint;
  senderName: string;
  time: bigint;
  message: Element[];
}

/** A message by its source ID. */
export declare function getMessage(sourceId: string): FetchedMessage;

export interface NodeInput {
  sender: number;
  name?: string;
  time?: number;
  text?: string;
  message?: unknown[];
}

/** Sends a forwarded message to `{group}` or `{friend}`. */
export declare function forward(to: { group?: number; friend?: number }, nodes: NodeInput[]): Sent;

export declare class Message {
  seq: number;
  time: number;
  account: number;
  scene: "group" | "friend" | "temp";
  group?: { id: number; name: string };
  sender: { id: number; name: string };
  replyKey: string;
  elements: Element[];
  text(): string;
  /** For `/name rest`, the rest (maybe ""); otherwise undefined. */
  command(name: string): string | undefined;
  sourceId(): string | undefined;
  reply(message: Sendable): Sent;
  replyOrLog(message: Sendable): Sent | undefined;
  recall(): void;
  /** Mutes whoever sent this group message, also an anonymous sender. */
  muteSender(seconds: number): void;
}

type MaybeAsync = void | Promise<void>;

export interface Handlers {
  setup?(): MaybeAsync;
  commands?: Record<string, (message: Message, rest: string) => MaybeAsync>;
  message?(message: Message): MaybeAsync;
  /** Every event that is not a message, as the world gives it. */
  event?(event: unknown): MaybeAsync;
  timer?(tag: string): MaybeAsync;
}

/** The world's exports: `export const { setup, handle, onTimer } = bot({...})`. */
export declare function bot(handlers: Handlers): {
  setup(): MaybeAsync;
  handle(event: unknown): MaybeAsync;
  onTimer(tag: string): MaybeAsync;
};
