"""botbridge's Python SDK: a thin layer over the `botbridge:bot@0.3.0` world,
in the spirit of the Rust one.

    from botbridge import Bot, command, kv, log

    class WitWorld(Bot):
        def setup(self):
            log.info("ready")

        @command("echo")
        def echo(self, message, text):
            message.reply(text)

Build with componentize-py and this folder on the path (scripts/build-guests
does it): `componentize-py -d wit -w bot componentize app -p . -p ../sdk-python`.
"""

import json as _json
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

import wit_world
from componentize_py_types import Err, Ok
from wit_world.imports import config as _config
from wit_world.imports import kv as _kv
from wit_world.imports import log as _log
from wit_world.imports import operations as _ops
from wit_world.imports import outgoing_handler as _outgoing
from wit_world.imports import streams as _streams
from wit_world.imports import timers as _timers
from wit_world.imports import wasi_http_types as _http
from wit_world.imports.botbridge_bot_types import (
    At,
    Element_At,
    Element_AtAll,
    Element_Face,
    Element_Image,
    Element_MessageSource,
    Element_Plain,
    EventData_Msg,
    ForwardNode,
    Image,
    NodeElement_Plain,
    MessageEvent_Friend,
    MessageEvent_Group,
)


# ── errors ──────────────────────────────────────────────────────────────

class BotError(Exception):
    """An operation the bridge refused; `code` is a protocol error code such as "rate-limited"."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code


def _attempt(call):
    try:
        return call()
    except Err as e:
        error = e.value
        if hasattr(error, "code"):
            raise BotError(error.code.name.lower().replace("_", "-"), error.message) from None
        # A timer or kv refusal: its case name, and its value if it has one.
        raise BotError(type(error).__name__.split("_")[-1], str(getattr(error, "value", error))) from None


# ── log, kv, config, timers ─────────────────────────────────────────────

class log:
    """Log lines under the bot's name in the bridge's log."""

    @staticmethod
    def debug(*parts: Any) -> None:
        _log.log(_log.Level.DEBUG, " ".join(map(str, parts)))

    @staticmethod
    def info(*parts: Any) -> None:
        _log.log(_log.Level.INFO, " ".join(map(str, parts)))

    @staticmethod
    def warn(*parts: Any) -> None:
        _log.log(_log.Level.WARN, " ".join(map(str, parts)))

    @staticmethod
    def error(*parts: Any) -> None:
        _log.log(_log.Level.ERROR, " ".join(map(str, parts)))


class kv:
    """The bot's own store, kept across hot reloads and restarts."""

    get = staticmethod(_kv.get)
    delete = staticmethod(_kv.delete)

    @staticmethod
    def set(key: str, value: bytes) -> None:
        _attempt(lambda: _kv.set(key, value))

    @staticmethod
    def list(prefix: str = "") -> List[str]:
        return _kv.list(prefix)

    @staticmethod
    def get_text(key: str) -> Optional[str]:
        raw = _kv.get(key)
        return None if raw is None else raw.decode("utf-8", "replace")

    @staticmethod
    def set_text(key: str, text: str) -> None:
        kv.set(key, text.encode())

    @staticmethod
    def get_json(key: str) -> Any:
        text = kv.get_text(key)
        try:
            return None if text is None else _json.loads(text)
        except ValueError:
            return None

    @staticmethod
    def set_json(key: str, value: Any) -> None:
        kv.set_text(key, _json.dumps(value))

    @staticmethod
    def increment(key: str) -> int:
        value = int(kv.get_text(key) or "0") + 1
        kv.set_text(key, str(value))
        return value


class config:
    """`[config]` and `[secrets]` of the bot's NAME.toml."""

    @staticmethod
    def get(key: str, default: Optional[str] = None) -> Optional[str]:
        value = _config.get(key)
        return default if value is None else value


class timers:
    """Timers call the bot's `on_timer(tag)`, one call at a time with its events."""

    @staticmethod
    def after(tag: str, ms: int) -> None:
        _attempt(lambda: _timers.set(tag, _timers.Schedule_After(ms)))

    @staticmethod
    def at(tag: str, unix_ms: int) -> None:
        _attempt(lambda: _timers.set(tag, _timers.Schedule_At(unix_ms)))

    @staticmethod
    def every(tag: str, ms: int) -> None:
        _attempt(lambda: _timers.set(tag, _timers.Schedule_Every(ms)))

    @staticmethod
    def cron(tag: str, expression: str, time_zone: Optional[str] = None) -> None:
        _attempt(lambda: _timers.set(tag, _timers.Schedule_Cron(_timers.Cron(expression, time_zone))))

    @staticmethod
    def cancel(tag: str) -> bool:
        return _attempt(lambda: _timers.cancel(tag))

    @staticmethod
    def list() -> List[Tuple[str, int]]:
        """(tag, next firing in unix ms), soonest first."""
        return [(t.tag, t.next) for t in _timers.list()]


# ── HTTP over wasi:http ─────────────────────────────────────────────────

class HttpError(Exception):
    """A request that failed; `refused` when the bridge would not send it."""

    def __init__(self, code: Any):
        name = type(code).__name__.replace("ErrorCode_", "")
        super().__init__(f"http: {name}")
        self.code = name
        self.refused = name in ("HttpRequestDenied", "DestinationIpProhibited")


class Response:
    def __init__(self, status: int, headers: List[Tuple[str, bytes]], body: bytes):
        self.status = status
        self.headers = {k: v.decode("latin-1") for k, v in headers}
        self.body = body

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return _json.loads(self.body)


def _unwrap(result):
    if isinstance(result, Err):
        raise HttpError(result.value)
    return result.value if isinstance(result, Ok) else result


class http:
    """Outbound HTTP to the origins in the bot's `allowed_hosts`."""

    @staticmethod
    def request(method: str, url: str, headers: Optional[Dict[str, str]] = None, body: bytes = b"") -> Response:
        parts = urlsplit(url)
        fields = _http.Fields.from_list([(k.lower(), v.encode()) for k, v in (headers or {}).items()])
        request = _http.OutgoingRequest(fields)
        methods = {"GET": _http.Method_Get(), "POST": _http.Method_Post(), "PUT": _http.Method_Put(),
                   "DELETE": _http.Method_Delete(), "PATCH": _http.Method_Patch(), "HEAD": _http.Method_Head()}
        request.set_method(methods.get(method.upper(), _http.Method_Other(method)))
        request.set_scheme(_http.Scheme_Https() if parts.scheme == "https" else _http.Scheme_Http())
        request.set_authority(parts.netloc)
        request.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        outgoing = request.body()
        try:
            future = _outgoing.handle(request, None)
        except Err as e:
            raise HttpError(e.value) from None
        if body:
            stream = outgoing.write()
            for start in range(0, len(body), 4096):
                stream.blocking_write_and_flush(body[start:start + 4096])
            stream.__exit__(None, None, None)
        _http.OutgoingBody.finish(outgoing, None)
        while (result := future.get()) is None:
            future.subscribe().block()
        response = _unwrap(_unwrap(result))
        incoming = response.consume()
        stream = incoming.stream()
        data = bytearray()
        while True:
            try:
                data += stream.blocking_read(65536)
            except Err as e:
                if isinstance(e.value, _streams.StreamError_Closed):
                    break
                raise HttpError(_http.http_error_code(e.value.value) or e.value) from None
        return Response(response.status(), response.headers().entries(), bytes(data))

    @staticmethod
    def get(url: str, headers: Optional[Dict[str, str]] = None) -> Response:
        return http.request("GET", url, headers)

    @staticmethod
    def post_json(url: str, data: Any, headers: Optional[Dict[str, str]] = None) -> Response:
        all_headers = {"content-type": "application/json", **(headers or {})}
        return http.request("POST", url, all_headers, _json.dumps(data).encode())


# ── message chains ──────────────────────────────────────────────────────

class Chain:
    """Builds a message chain: `Chain().at(123).text(" hi")`. A str is a chain too."""

    def __init__(self) -> None:
        self.elements: List[Any] = []

    def text(self, text: str) -> "Chain":
        self.elements.append(Element_Plain(str(text)))
        return self

    def at(self, user: int, display: str = "") -> "Chain":
        self.elements.append(Element_At(At(user, display)))
        return self

    def at_all(self) -> "Chain":
        self.elements.append(Element_AtAll())
        return self

    def face(self, face_id: int) -> "Chain":
        self.elements.append(Element_Face(face_id))
        return self

    def image(self, url: str) -> "Chain":
        self.elements.append(Element_Image(Image("", url)))
        return self


def _elements(message: Any) -> List[Any]:
    return message.elements if isinstance(message, Chain) else [Element_Plain(str(message))]


class send:
    """Sends to a group or a friend of the bridge's account; returns (receipt_id, source_id)."""

    @staticmethod
    def to_group(group: int, message: Any) -> Tuple[str, str]:
        sent = _attempt(lambda: _ops.send_to_group(None, group, _elements(message)))
        return sent.receipt_id, sent.source_id

    @staticmethod
    def to_friend(friend: int, message: Any) -> Tuple[str, str]:
        sent = _attempt(lambda: _ops.send_to_friend(None, friend, _elements(message)))
        return sent.receipt_id, sent.source_id


class group:
    """What an admin does in a group (world 0.3.0)."""

    @staticmethod
    def kick(group: int, member: int, reject_rejoin: bool = False) -> None:
        _attempt(lambda: _ops.kick_member(None, group, member, reject_rejoin))

    @staticmethod
    def mute_all(group: int, enable: bool) -> None:
        _attempt(lambda: _ops.mute_all(None, group, enable))

    @staticmethod
    def set_card(group: int, member: int, card: str) -> None:
        _attempt(lambda: _ops.set_member_card(None, group, member, card))

    @staticmethod
    def set_admin(group: int, member: int, enable: bool) -> None:
        _attempt(lambda: _ops.set_group_admin(None, group, member, enable))


def poke(target: int, group: Optional[int] = None) -> None:
    """Pokes `target` in `group`, or privately without one."""
    _attempt(lambda: _ops.send_poke(None, group, target))


def get_message(source_id: str) -> Any:
    """A message by its source ID (chat, channel, group, sender, sender_name, time, message)."""
    return _attempt(lambda: _ops.get_message(source_id))


def forward(nodes: List[Tuple[int, str, str]], group: Optional[int] = None, friend: Optional[int] = None) -> Tuple[str, str]:
    """Sends a forwarded message of (sender, name, text) nodes to `group` or `friend`."""
    wit = [ForwardNode(sender, name, 0, [NodeElement_Plain(text)]) for sender, name, text in nodes]
    sent = _attempt(lambda: _ops.send_forward(None, group, friend, wit))
    return sent.receipt_id, sent.source_id


# ── events and the bot ──────────────────────────────────────────────────

class Message:
    """A received message: where (`scene` "group", "friend" or "temp"), from whom, and how to answer."""

    def __init__(self, event: Any):
        inner = event.data.value
        m = inner.value
        self.seq, self.time, self.account = event.seq, event.time, event.bot
        self.scene = "group" if isinstance(inner, MessageEvent_Group) else (
            "friend" if isinstance(inner, MessageEvent_Friend) else "temp")
        self.group = getattr(m, "group", None)
        self.sender_id = m.sender.id
        self.sender_name = getattr(m.sender, "name_card_or_nick", None) or m.sender.nick
        self.reply_key = m.reply_key
        self.elements = m.message

    def text(self) -> str:
        return "".join(e.value for e in self.elements if isinstance(e, Element_Plain))

    def command(self, name: str) -> Optional[str]:
        """For `/name rest`, the rest (maybe ""); otherwise None."""
        text = self.text().lstrip()
        if not text.startswith("/" + name):
            return None
        rest = text[len(name) + 1:]
        return rest.strip() if rest == "" or rest[0].isspace() else None

    def source_id(self) -> Optional[str]:
        first = self.elements[0] if self.elements else None
        return first.value if isinstance(first, Element_MessageSource) else None

    def reply(self, message: Any) -> Tuple[str, str]:
        sent = _attempt(lambda: _ops.reply(self.reply_key, _elements(message)))
        return sent.receipt_id, sent.source_id

    def reply_or_log(self, message: Any) -> None:
        try:
            self.reply(message)
        except BotError as e:
            log.warn(f"reply failed: {e}")

    def recall(self) -> None:
        _attempt(lambda: _ops.recall(self.source_id()))

    def mute_sender(self, seconds: int) -> None:
        """Mutes whoever sent this group message, also an anonymous sender."""
        _attempt(lambda: _ops.mute_member(None, _ops.MuteTarget_SenderOf(self.source_id()), seconds))


def command(name: str) -> Callable:
    """Marks a method of a Bot as the handler of `/name rest`: `method(self, message, rest)`."""

    def mark(method: Callable) -> Callable:
        method.botbridge_command = name
        return method

    return mark


class Bot(wit_world.WitWorld):
    """Subclass it as `WitWorld`; override `setup`, `on_message`, `on_event`,
    `on_timer`, and mark commands with `@command`. A handler that raises is
    logged; the bot keeps running."""

    def setup(self) -> None:
        pass

    def on_message(self, message: Message) -> None:
        pass

    def on_event(self, event: Any) -> None:
        pass

    def on_timer(self, tag: str) -> None:
        pass

    def handle(self, event: Any) -> None:
        try:
            if not isinstance(event.data, EventData_Msg):
                return self.on_event(event)
            message = Message(event)
            for attr in dir(type(self)):
                method = getattr(self, attr, None)
                name = getattr(method, "botbridge_command", None)
                if name is not None:
                    rest = message.command(name)
                    if rest is not None:
                        return method(message, rest)
            self.on_message(message)
        except Exception as e:  # noqa: BLE001 - one bad message must not stop the bot
            log.error(f"handler failed: {type(e).__name__}: {e}")
