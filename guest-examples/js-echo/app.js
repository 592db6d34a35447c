// The echo bot in JavaScript, on the SDK (sdk-js/): answers `/echo TEXT` with
// TEXT in every scene, and `/echoes` with how many times it has echoed (kept
// in kv, so the count survives hot reloads and restarts).
//
// Build: scripts/build-guests js (componentize-qjs, world bot-core: 1.6 MB).

import { bot, kv, log } from "../sdk-js/botbridge.js";

const COUNT_KEY = "echoes";

export const { setup, handle, onTimer } = bot({
  setup: () => log.info("js echo ready"),
  commands: {
    echo(message, text) {
      if (!text) return;
      kv.increment(COUNT_KEY);
      message.replyOrLog(text);
    },
    echoes(message) {
      message.replyOrLog(`${kv.getText(COUNT_KEY) ?? 0} echoes so far`);
    },
  },
});
