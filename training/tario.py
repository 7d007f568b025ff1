"""Samples of a shard stream (`{"__key__", "__url__", suffix: data}`), read with one header parse per member.

Python's `tarfile` (what webdataset's `tar_file_expander` uses) builds a full TarInfo per header and
parses the pax record that webdataset's writer puts before every member; for a 48-frame video with
RGB + flow (~150 members) that was over half of a student clip's loader time. This reader parses only
what a shard needs: name (ustar prefix, pax `path`, GNU long name), size (octal, base-256, pax `size`),
type and checksum (in C where a compiler is, training/_tarscan.c). `tar_samples` gives the samples that
webdataset's `tar_file_expander` + `group_by_keys` give, so the training loader needs no webdataset at
all (a GPU node may have torch and numpy only).
"""

from __future__ import annotations

import ctypes
import functools
import io
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np

BLOCK = 512
_META = re.compile(r"__[^/]*__($|/)")  # webdataset's own meta members (e.g. __index__), never samples


class TarError(ValueError):
    """A shard that is not a readable tar (bad header checksum, truncated member)."""


def _number(field: bytes) -> int:
    """A tar numeric field: NUL/space-terminated octal, or base-256 when the high bit is set."""
    if field[0] & 0x80:
        return int.from_bytes(field[1:], "big")  # positive base-256 (sizes never are negative)
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _read_exact(stream: BinaryIO, n: int, url: str, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise TarError(f"{url}: truncated tar ({what}: {len(data)} of {n} bytes)")
    return data


def _pax_records(data: bytes) -> dict[str, str]:
    """'<len> key=value\\n' records of a pax header (only `path` and `size` matter here)."""
    out, pos = {}, 0
    while pos < len(data) and data[pos : pos + 1] != b"\0":
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        if length <= 0:
            raise TarError(f"bad pax record length {length}")  # would never advance
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        out[key.decode()] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def _padded(size: int) -> int:
    return (size + BLOCK - 1) // BLOCK * BLOCK


def tar_members(stream: BinaryIO, url: str) -> Iterator[tuple[str, bytes | memoryview]]:
    """(name, data) of every regular file in a tar stream, in order; raises TarError on a bad header.

    With the C scanner (training/_tarscan.c) the stream is read in chunks of CHUNK bytes and each chunk's
    headers are parsed in one call, and `data` is a read-only memoryview into the chunk: a member nobody
    keeps is never copied. That decides a long video's read: a 280-frame Kinetics clip with flow is ~840
    members, of which a clip decodes 48. Without the scanner (no compiler), and for whatever it cannot
    vouch for (a bad checksum, a stream ending inside a member), the Python reader below takes over where
    it stopped, so every error reads the same either way; it yields bytes."""
    scan = tar_scanner()
    if scan is None:
        yield from _python_members(stream, url)
        return
    out = np.empty((SCAN_BATCH, 5), np.int64)  # per member: type, name offset, name length, data offset, size
    result = np.zeros(3, np.int64)  # bytes used, status, bytes the next member needs
    buf, length, start, ended = bytearray(), 0, 0, False
    view = memoryview(buf)
    while True:
        address = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf)) if buf else None
        count = scan(address, length, start, out.ctypes.data, SCAN_BATCH, result.ctypes.data)
        for kind, name_at, name_len, data_at, size in out[:count].tolist():
            if kind not in _REGULAR:
                continue
            if name_len >= 0:
                raw_name = buf[name_at : name_at + name_len]
            else:  # ustar: prefix + "/" + name, each NUL-terminated within its field
                raw_name = buf[name_at + 345 : name_at + 500].split(b"\0", 1)[0] + b"/"
                raw_name += buf[name_at : name_at + 100].split(b"\0", 1)[0]
            name = raw_name.decode("utf-8", "surrogateescape")
            if name[:2] != "__" or not _META.match(name):  # the regex only where it can match
                yield name, view[data_at : data_at + size]
        start, status, needed = (int(v) for v in result)
        if status == _SCAN_END:
            return
        if status == _SCAN_FULL:
            continue
        if status == _SCAN_INCOMPLETE and not ended:
            # Another buffer each time: the members already yielded keep viewing the old one.
            keep = length - start
            fresh = _chunk_buffer(keep + max(CHUNK, needed - keep))
            fresh[:keep] = view[start:length]
            got = _read_into(stream, memoryview(fresh)[keep:])
            _retire(buf)
            buf, length, start, ended = fresh, keep + got, 0, got < len(fresh) - keep
            view = memoryview(buf).toreadonly()
            continue
        # A header the scanner does not vouch for, or the stream ended inside a member: the Python reader
        # goes on from there (the unread rest of the stream after the buffer) and raises or ends as it would.
        yield from _python_members(cast(BinaryIO, _Chain(bytes(view[start:length]), stream)), url)
        return


_pools = threading.local()  # this thread's retired chunk buffers (never shared: reuse is checked, then taken)
_POOL_SIZE = 8


def _chunk_buffer(size: int) -> bytearray:
    """A retired chunk buffer nothing views any more, else a new one. Reuse matters: a new 4 MiB buffer
    costs its page faults on first write, which doubled the cost of reading a shard (0.30 against 0.14
    ms/MiB) while the samples being grouped kept their chunks alive."""
    pool = getattr(_pools, "buffers", None)
    for i, old in enumerate(pool or ()):
        if len(old) >= size and _unviewed(old):
            return pool.pop(i)
    return bytearray(size)


def _retire(buf: bytearray) -> None:
    if buf and len(buf) <= 2 * CHUNK:  # a buffer grown for one huge member is not worth keeping
        pool = _pools.__dict__.setdefault("buffers", [])
        pool.append(buf)
        del pool[:-_POOL_SIZE]


def _unviewed(buf: bytearray) -> bool:
    """True when no memoryview of `buf` is alive: only then may a bytearray change size (BufferError)."""
    try:
        buf.append(0)
    except BufferError:
        return False
    del buf[-1]
    return True


class _Chain:
    """`head` bytes, then the rest of `stream`: the read() the Python reader needs."""

    def __init__(self, head: bytes, stream: BinaryIO):
        self.head, self.stream = io.BytesIO(head), stream

    def read(self, n: int) -> bytes:
        data = self.head.read(n)
        return data + self.stream.read(n - len(data)) if len(data) < n else data


def _read_into(stream: BinaryIO, target: memoryview) -> int:
    """Fills `target` from the stream; fewer bytes only at its end (a pipe returns what it has per call)."""
    filled = 0
    readinto = getattr(stream, "readinto", None)
    while filled < len(target):
        if readinto is not None:
            got = readinto(target[filled:])
        else:
            data = stream.read(len(target) - filled)
            got = len(data)
            target[filled : filled + got] = data
        if not got:
            break
        filled += got
    return filled


CHUNK = 4 << 20  # bytes read per call; a longer member is read whole
SCAN_BATCH = 4096  # members per scanner call
_REGULAR = (ord("0"), 0, ord("7"))  # regular files (no dirs, links)
_SCAN_INCOMPLETE, _SCAN_END, _SCAN_BAD, _SCAN_FULL = 0, 1, 2, 3


@functools.cache
def tar_scanner():
    """ctypes `flowprep_tar_scan`, or None where it cannot be built (FLOWPREP_NATIVE_TAR=0 turns it off)."""
    if os.environ.get("FLOWPREP_NATIVE_TAR", "1") == "0":
        return None
    from .native import load

    c = ctypes
    argtypes = [c.c_void_p, c.c_int64, c.c_int64, c.c_void_p, c.c_int64, c.c_void_p]
    return load(Path(__file__).with_name("_tarscan.c"), "flowprep_tar_scan", argtypes, c.c_int64, what="tar scanner")


def _python_members(stream: BinaryIO, url: str) -> Iterator[tuple[str, bytes]]:
    """The pure-Python reader: one header at a time."""
    pending: dict[str, str] = {}  # pax / GNU long-name overrides for the next member
    while True:
        header = stream.read(BLOCK)
        if len(header) < BLOCK or header.count(0) == BLOCK:
            return  # end-of-archive blocks (or a stream that ends exactly between members)
        stored = _number(header[148:156])
        if stored != sum(header) - sum(header[148:156]) + 8 * 32:  # checksum field counts as spaces
            raise TarError(f"{url}: bad tar header checksum (corrupt or not a tar)")
        kind = header[156:157]
        size = int(pending["size"]) if "size" in pending else _number(header[124:136])
        if kind in (b"x", b"g", b"L"):  # pax extended / pax global / GNU long name: data is metadata
            data = _read_exact(stream, _padded(size), url, "extended header")[:size]
            if kind == b"x":
                pending.update(_pax_records(data))
            elif kind == b"L":
                pending["path"] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            continue
        name = pending.get("path")
        if name is None:
            name = header[0:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            prefix = header[345:500].split(b"\0", 1)[0] if header[257:262] == b"ustar" else b""
            if prefix:
                name = prefix.decode("utf-8", "surrogateescape") + "/" + name
        pending = {}
        body = _read_exact(stream, _padded(size), url, name) if size else b""
        if kind in (b"0", b"\0", b"7") and not _META.match(name):  # regular files only (no dirs, links)
            yield name, body[:size]


_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's split: key up to the basename's first dot


def split_key(fname: str) -> tuple[str, str] | None:
    """(key, lower-case suffix) of a member name as webdataset splits it, or None (no extension: no sample)."""
    slash = fname.rfind("/")
    dot = fname.find(".", slash + 1)
    if dot > slash + 1:  # the usual shape, where _KEY's greedy match splits at the basename's first dot
        return fname[:dot], fname[dot + 1 :].lower()
    match = _KEY.match(fname)
    return (match.group(1), match.group(2).lower()) if match else None


def tar_samples(shards: Iterable[dict], on_error: Callable[[Exception], None]) -> Iterator[dict]:
    """{"__key__", "__url__", suffix: data, ...} per video of every shard, as webdataset's `tar_file_expander`
    + `group_by_keys` give them, in one loop (no per-member dict: a long video has ~1,000 members).

    Consecutive members with one key make a sample; a video never spans shards. A bad shard is reported to
    `on_error` and skipped from the bad point on (the members before it stand); a duplicate suffix within a
    sample is reported and that member dropped (the sample goes on)."""
    for shard in shards:
        url = shard["url"]
        sample: dict | None = None
        try:
            for fname, data in tar_members(shard["stream"], url):
                split = split_key(fname)
                if split is None:
                    continue  # a member without an extension belongs to no sample (webdataset skips it too)
                key, suffix = split
                if sample is None or key != sample["__key__"]:
                    if sample:
                        yield sample
                    sample = {"__key__": key, "__url__": url}
                if suffix in sample:
                    on_error(TarError(f"{url}: {fname}: duplicate member in sample {key}"))
                    continue
                sample[suffix] = data
        except Exception as exn:  # noqa: BLE001 - any failure of one shard is data, not a crash
            on_error(exn if isinstance(exn, TarError) else TarError(f"{url}: {exn!r}"))
        if sample:
            yield sample
