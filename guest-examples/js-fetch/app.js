// Outbound HTTP and timers from JavaScript, on the SDK: `/fetch URL` answers
// the status and the start of the body, with `fetch` (the URL's origin must
// be in the bot's `allowed_hosts`); `/later MS TEXT` says TEXT in the group
// after MS milliseconds.
//
// Build: scripts/build-guests js (fetch needs componentize-js and the `bot`
// world with wasi:http: a bigger component than the QuickJS ones).

import { bot, kv, send, timers } from "../sdk-js/botbridge.js";

export const { setup, handle, onTimer } = bot({
  commands: {
    async fetch(message, url) {
      try {
        const response = await fetch(url);
        const body = await response.text();
        message.replyOrLog(`${response.status}, ${body.length} chars: ${body.slice(0, 100)}`);
      } catch (e) {
        message.replyOrLog(`fetch failed: ${e.message ?? e}`);
      }
    },
    later(message, rest) {
      const [ms, ...words] = rest.split(" ");
      if (!message.group || !/^\d+$/.test(ms) || words.length === 0) {
        return message.replyOrLog("Usage (in a group): /later MS TEXT");
      }
      const tag = `later-${message.seq}`;
      kv.setJson(tag, { group: message.group.id, text: words.join(" ") });
      timers.after(tag, Number(ms));
      message.replyOrLog("OK");
    },
  },
  timer(tag) {
    const later = kv.getJson(tag);
    if (later) {
      send.toGroup(later.group, later.text);
      kv.delete(tag);
    }
  },
});
