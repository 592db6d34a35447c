"""The echo bot in Python, on the SDK (sdk-python/): answers `/echo TEXT` with
TEXT in every scene, and `/echoes` with how many times it has echoed (kept in
kv, so the count survives hot reloads and restarts).

Build: scripts/build-guests python.
"""

from botbridge import Bot, command, kv, log

COUNT_KEY = "echoes"


class WitWorld(Bot):
    def setup(self) -> None:
        log.info("python echo ready")

    @command("echo")
    def echo(self, message, text: str) -> None:
        if text:
            kv.increment(COUNT_KEY)
            message.reply_or_log(text)

    @command("echoes")
    def echoes(self, message, _rest: str) -> None:
        message.reply_or_log(f"{kv.get_text(COUNT_KEY) or 0} echoes so far")
