"""Bytes between the explorer and its front end, in pieces no comm message is too big for:
payload traits out, and again when a view pulls (`Outbox`); image uploads in (`Uploads`)."""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anywidget
from PIL import Image

from .payload import decode_upload
from .protocol import (
    CHUNK_BYTES,
    INLINE_PAYLOAD_BYTES,
    MAX_UPLOAD_BYTES,
    UPLOAD_DATA_KEY,
    UPLOAD_TIMEOUT_S,
    Push,
)

__all__ = ["Outbox", "Uploads"]

FRONT_END_CODE = ("_esm", "_css", "_anywidget_id")  # what anywidget adds to each widget


class Outbox:
    """Sets the payload traits `names` of `widget` through `write(name, value)`, each one
    piece: metadata and bytes together. Bytes too large for one message travel in
    `Push.CHUNK` messages instead; a view asks for what it lacks (`Message.PULL`), and `answer`
    sends the current state again (through the widget's public `send_state` and `send`)."""

    def __init__(
        self, widget: Any, names: Sequence[str], write: Callable[[str, dict], None]
    ) -> None:
        self._widget, self.names, self._write = widget, tuple(names), write
        self._payloads: dict[str, tuple[bytes, dict]] = {}  # name: (data, meta)
        self._chunked: dict[str, tuple[int, bytes]] = {}  # name: (id, data)
        self._last_id = 0

    def set(self, name: str, data: bytes, meta: dict) -> None:
        """Set payload trait `name` to `meta` with `data` (call inside `hold_sync()`; nothing
        at all: `b""` and `{}`). Data over `INLINE_PAYLOAD_BYTES` go in chunks, sent before
        the trait that says `chunked`: no message carries more than `MAX_MESSAGE_BYTES`."""
        self._payloads[name] = (data, dict(meta))
        if len(data) <= INLINE_PAYLOAD_BYTES:
            self._chunked.pop(name, None)
            self._write(name, {**meta, "data": data} if data or meta else {})
            return
        self._last_id += 1
        self._chunked[name] = (self._last_id, data)
        self._send_chunks(name)
        chunked = {"id": self._last_id, "size": len(data), "count": -(-len(data) // CHUNK_BYTES)}
        self._write(name, {**meta, "chunked": chunked})

    def update(self, name: str, **changes: Any) -> None:
        """Change some of payload `name`'s metadata, keeping its bytes."""
        data, meta = self._payloads.get(name, (b"", {}))
        if data or meta:
            self.set(name, data, {**meta, **changes})

    def meta(self, name: str) -> dict:
        """Payload `name`'s metadata (`{}` when it is empty)."""
        return dict(self._payloads.get(name, (b"", {}))[1])

    def data(self, name: str) -> bytes:
        """Payload `name`'s bytes, inline or chunked."""
        return self._payloads.get(name, (b"", {}))[0]

    def answer(self, names: Any) -> None:
        """A view's `Message.PULL`: the current state of payloads `names` (of every synced
        trait, payloads included, when `names` is not a list: one message for the rest, one per
        payload), the chunks of the chunked ones, then `Push.PULLED`. Names that are not
        payloads are left out."""
        widget = self._widget
        if isinstance(names, list):
            names = [name for name in self.names if name in names]
            if names:
                widget.send_state(names)
        else:
            names = list(self.names)
            # the explorer's own traits: not the front end's code, which the view runs already;
            # each payload in a message of its own, so no message holds more than one of them
            base = {*anywidget.AnyWidget.class_traits(sync=True), *FRONT_END_CODE, *names}
            widget.send_state([key for key in widget.keys if key not in base])
            for name in names:
                widget.send_state([name])
        for name in names:
            if name in self._chunked:
                self._send_chunks(name)
        widget.send({"type": Push.PULLED.value, "names": names})

    def _send_chunks(self, name: str) -> None:
        ident, data = self._chunked[name]
        count = -(-len(data) // CHUNK_BYTES)
        for index in range(count):
            piece = data[index * CHUNK_BYTES : (index + 1) * CHUNK_BYTES]
            header = {"name": name, "id": ident, "index": index, "count": count}
            self._widget.send({"type": Push.CHUNK.value, **header, "size": len(data)}, [piece])


@dataclass
class _Upload:
    """An upload whose chunks are arriving (`Message.UPLOAD`)."""

    id: Any
    name: str
    count: int
    size: int
    parts: list[bytes] = field(default_factory=list)
    timer: threading.Timer | None = None


def _data(content: dict, buffers: list) -> bytes | None:
    """A message's bytes: its first buffer, else its `UPLOAD_DATA_KEY` field (base64 text or
    a list of byte values), else None. ValueError if that field is not either."""
    if buffers:
        return bytes(buffers[0])
    value = content.get(UPLOAD_DATA_KEY)
    if value is None:
        return None
    try:
        if isinstance(value, str):
            return base64.b64decode(value, validate=True)
        if isinstance(value, list):
            return bytes(value)
    except (binascii.Error, ValueError, TypeError):
        pass
    raise ValueError("malformed")


class Uploads:
    """Image uploads from the front end, whole or in chunks, to `on_image(name, picture)`;
    what goes wrong (a lost chunk, a file too large or unreadable, chunks that stop coming
    for `timeout_s`) to `on_error(message)`."""

    def __init__(
        self,
        on_image: Callable[[str, Image.Image], None],
        on_error: Callable[[str], None],
        timeout_s: float = UPLOAD_TIMEOUT_S,
    ) -> None:
        self._on_image = on_image
        self._on_error = on_error
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self.pending: _Upload | None = None

    def receive(self, content: dict, buffers: list) -> None:
        """One upload message: the file is decoded once all `count` chunks have arrived in
        order. A chunk out of order (one went missing), a wrong total or malformed data drop
        the upload. A message without `count` carries the whole file."""
        name = str(content.get("name", "upload"))
        try:
            data = _data(content, buffers)
        except ValueError:
            with self._lock:
                self._drop(f"Upload of {name!r} arrived malformed; please try again.")
            return
        if "count" not in content:
            self._load(name, [] if data is None else [data])
            return
        with self._lock:
            whole = self._add_chunk(name, content, data)
        if whole is not None:
            self._load(name, [whole])

    def _add_chunk(self, name: str, content: dict, data: bytes | None) -> bytes | None:
        """Keep one chunk (under the lock); the whole file once it is complete."""
        index, count, size = (content.get(key) for key in ("index", "count", "size"))
        if not all(isinstance(v, int) and v >= 0 for v in (index, count, size)) or not count:
            return self._drop(f"Upload of {name!r} arrived malformed; please try again.")
        if size > MAX_UPLOAD_BYTES:
            return self._drop(
                f"{name} is larger than {MAX_UPLOAD_BYTES >> 20} MB; please pick a smaller image."
            )
        if index == 0:
            self._cancel_timer()
            self.pending = _Upload(content.get("id"), name, count, size)
        upload = self.pending
        if upload is None or upload.id != content.get("id") or index != len(upload.parts):
            expected = 0 if upload is None else len(upload.parts)
            return self._drop(
                f"Upload of {name!r} lost chunk {expected + 1} of {count} (chunk {index + 1} "
                "came next); please try again."
            )
        if data is None or (upload.count, upload.size) != (count, size):
            return self._drop(f"Upload of {name!r} arrived without data; please try again.")
        upload.parts.append(data)
        self._cancel_timer()
        if len(upload.parts) < count:
            upload.timer = threading.Timer(self.timeout_s, self._expire, [upload])
            upload.timer.daemon = True
            upload.timer.start()
            return None
        self.pending = None
        whole = b"".join(upload.parts)
        if len(whole) != size:
            return self._drop(
                f"Upload of {name!r} arrived incomplete ({len(whole)} of {size} bytes); "
                "please try again."
            )
        return whole

    def _expire(self, upload: _Upload) -> None:
        with self._lock:
            if self.pending is not upload:
                return  # completed, dropped or replaced meanwhile
            done = len(upload.parts)
            self._drop(
                f"Upload of {upload.name!r} stopped after chunk {done} of {upload.count} "
                f"(nothing came for {self.timeout_s:g} s); please try again."
            )

    def _cancel_timer(self) -> None:
        if self.pending is not None and self.pending.timer is not None:
            self.pending.timer.cancel()

    def _drop(self, message: str) -> None:
        """Forget the pending upload (under the lock) and say why."""
        self._cancel_timer()
        self.pending = None
        self._on_error(message)

    def _load(self, name: str, buffers: list) -> None:
        try:
            picture = decode_upload(name, buffers, MAX_UPLOAD_BYTES)
        except ValueError as exc:
            self._on_error(str(exc))
            return
        self._on_image(name, picture)
