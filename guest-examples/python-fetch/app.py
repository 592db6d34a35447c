"""Outbound HTTP and timers from Python, on the SDK: `/fetch URL` answers the
status and the start of the body (the URL's origin must be in the bot's
`allowed_hosts`); `/later MS TEXT` says TEXT in the group after MS
milliseconds.

Build: scripts/build-guests python.
"""

from botbridge import Bot, BotError, HttpError, command, http, kv, send, timers


class WitWorld(Bot):
    @command("fetch")
    def fetch(self, message, url: str) -> None:
        try:
            response = http.get(url)
            body = response.text()
            message.reply_or_log(f"{response.status}, {len(body)} chars: {body[:100]}")
        except HttpError as e:
            message.reply_or_log(f"fetch {'refused' if e.refused else 'failed'}: {e.code}")

    @command("later")
    def later(self, message, rest: str) -> None:
        ms, _, text = rest.partition(" ")
        if message.group is None or not ms.isdigit() or not text:
            return message.reply_or_log("Usage (in a group): /later MS TEXT")
        tag = f"later-{message.seq}"
        kv.set_json(tag, {"group": message.group.id, "text": text})
        try:
            timers.after(tag, int(ms))
            message.reply_or_log("OK")
        except BotError as e:
            message.reply_or_log(f"cannot: {e}")

    def on_timer(self, tag: str) -> None:
        later = kv.get_json(tag)
        if later:
            send.to_group(later["group"], later["text"])
            kv.delete(tag)
