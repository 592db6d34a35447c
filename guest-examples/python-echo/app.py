"""The echo bot in Python: answers `/echo TEXT` with TEXT in every scene, and
`/echoes` with how many times it has echoed (kept in kv, so the count survives
hot reloads and restarts).

Build: scripts/build-guests (componentize-py -d wit -w bot componentize app).
"""

import wit_world
from wit_world.imports import kv, log, operations
from wit_world.imports.botbridge_bot_types import (
    Element_Plain,
    EventData_Msg,
)
from componentize_py_types import Err

COUNT_KEY = "echoes"


def text_of(chain) -> str:
    return "".join(e.value for e in chain if isinstance(e, Element_Plain))


def echoes() -> int:
    raw = kv.get(COUNT_KEY)
    return int(raw.decode()) if raw else 0


class WitWorld(wit_world.WitWorld):
    def setup(self) -> None:
        log.log(log.Level.INFO, "python echo ready")

    def on_timer(self, tag: str) -> None:
        pass

    def handle(self, event) -> None:
        if not isinstance(event.data, EventData_Msg):
            return
        message = event.data.value.value  # group, friend or temp: all have these fields
        text = text_of(message.message)
        if text.startswith("/echo "):
            answer = text[len("/echo "):]
            kv.set(COUNT_KEY, str(echoes() + 1).encode())
        elif text.strip() == "/echoes":
            answer = f"{echoes()} echoes so far"
        else:
            return
        try:
            operations.reply(message.reply_key, [Element_Plain(answer)])
        except Err as e:
            log.log(log.Level.WARN, f"reply failed: {e.value.message}")
