"""IRC lines (RFC 1459/2812 with IRCv3 tags) as values: parsing, formatting, CTCP."""

from __future__ import annotations

from dataclasses import dataclass, field

CTCP = "\x01"
FORBIDDEN = frozenset("\r\n\0")
MAX_LINE_BYTES = 510
"""512 including the CR LF."""


class LineError(ValueError):
    """A parameter would break the line (CR, LF, NUL, or a misplaced trailing parameter)."""


@dataclass(frozen=True, slots=True)
class Message:
    command: str
    params: tuple[str, ...] = ()
    prefix: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def nick(self) -> str:
        """The sender's nick (or server name) from ``nick!user@host``."""
        return (self.prefix or "").split("!", 1)[0].split("@", 1)[0]

    @property
    def from_user(self) -> bool:
        return self.prefix is not None and "!" in self.prefix

    def param(self, index: int, default: str = "") -> str:
        return self.params[index] if -len(self.params) <= index < len(self.params) else default

    @property
    def trailing(self) -> str:
        return self.params[-1] if self.params else ""


def parse(line: str) -> Message:
    """One line without its CR LF."""
    rest = line.rstrip("\r\n")
    tags: dict[str, str] = {}
    if rest.startswith("@"):
        raw, _, rest = rest[1:].partition(" ")
        for item in raw.split(";"):
            key, _, value = item.partition("=")
            if key:
                tags[key] = value
        rest = rest.lstrip(" ")
    prefix = None
    if rest.startswith(":"):
        prefix, _, rest = rest[1:].partition(" ")
        rest = rest.lstrip(" ")
    trailing = None
    if " :" in rest:
        rest, _, trailing = rest.partition(" :")
    elif rest.startswith(":"):
        rest, trailing = "", rest[1:]
    words = rest.split()
    if not words:
        raise LineError("no command")
    params = words[1:] if trailing is None else [*words[1:], trailing]
    return Message(words[0].upper(), tuple(params), prefix, tags)


def format_line(command: str, *params: str) -> str:
    """A line to send (without CR LF); the last parameter becomes trailing when it must."""
    parts = [command]
    for index, param in enumerate(params):
        if FORBIDDEN.intersection(param):
            raise LineError("IRC parameters may not contain CR, LF or NUL")
        last = index == len(params) - 1
        if not last and (not param or " " in param or param.startswith(":")):
            raise LineError(f"only the last parameter may be empty or contain spaces: {param!r}")
        parts.append(
            ":" + param if last and (not param or " " in param or param[0] == ":") else param
        )
    return " ".join(parts)


def ctcp(command: str, text: str = "") -> str:
    return f"{CTCP}{command} {text}{CTCP}" if text else f"{CTCP}{command}{CTCP}"


def parse_ctcp(text: str) -> tuple[str, str] | None:
    """``(command, argument)`` of a CTCP message such as ``\\x01ACTION waves\\x01``."""
    if not text.startswith(CTCP):
        return None
    body = text[1:].removesuffix(CTCP)
    command, _, arg = body.partition(" ")
    return command.upper(), arg


def split_text(text: str, limit: int = 400) -> list[str]:
    """Lines of ``text``, each cut to at most ``limit`` UTF-8 bytes (on character boundaries)."""
    chunks: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = line.replace("\0", "")
        current = ""
        for char in line:
            if len((current + char).encode()) > limit:
                chunks.append(current)
                current = ""
            current += char
        if current:
            chunks.append(current)
    return chunks


def is_channel(name: str) -> bool:
    return bool(name) and name[0] in "#&+!"


def casefold(name: str) -> str:
    """RFC 1459 case mapping: ``[]\\~`` are the upper case of ``{}|^``."""
    return name.lower().translate(str.maketrans("[]\\~", "{}|^"))
