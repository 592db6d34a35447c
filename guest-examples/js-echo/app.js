// The echo bot in JavaScript: answers `/echo TEXT` with TEXT in every scene,
// and `/echoes` with how many times it has echoed (kept in kv, so the count
// survives hot reloads and restarts).
//
// Build: scripts/build-guests (componentize-js app.js --wit wit --world-name bot).

import { reply } from "botbridge:bot/operations@0.2.0";
import { log } from "botbridge:bot/log@0.2.0";
import * as kv from "botbridge:bot/kv@0.2.0";

const COUNT_KEY = "echoes";

function textOf(chain) {
  return chain.filter((e) => e.tag === "plain").map((e) => e.val).join("");
}

function echoes() {
  const raw = kv.get(COUNT_KEY);
  return raw ? Number(new TextDecoder().decode(raw)) : 0;
}

export function setup() {
  log("info", "js echo ready");
}

export function onTimer(tag) {}

export function handle(event) {
  if (event.data.tag !== "msg") return;
  const message = event.data.val.val; // group, friend or temp: all have these fields
  const text = textOf(message.message);
  let answer;
  if (text.startsWith("/echo ")) {
    answer = text.slice("/echo ".length);
    kv.set(COUNT_KEY, new TextEncoder().encode(String(echoes() + 1)));
  } else if (text.trim() === "/echoes") {
    answer = `${echoes()} echoes so far`;
  } else {
    return;
  }
  try {
    reply(message.replyKey, [{ tag: "plain", val: answer }]);
  } catch (e) {
    log("warn", `reply failed: ${e.message ?? e}`);
  }
}
