"""ShardWriter: samples -> tar shards published atomically, rolling over past a target size."""

from __future__ import annotations

import hashlib
import io
import logging
import tarfile

from . import format as fmt
from .storage import TMP_MARK, join

log = logging.getLogger(__name__)
_MTIME = 1_700_000_000  # a fixed member mtime keeps shards byte-identical across re-runs


class ShardWriter:
    """Writes samples of one task to `<partition>-<task>-<part>.tar`, each shard under a temp name
    until it is complete. `close()` publishes the open shard; `abort()` discards it."""

    def __init__(self, fs, out_dir: str, partition: str, task_index: int, max_bytes: int):
        self.fs, self.out_dir, self.partition, self.task_index, self.max_bytes = (
            fs,
            out_dir,
            partition,
            task_index,
            max_bytes,
        )
        self.published: list[str] = []  # shard names, in order
        self.digests: dict[str, tuple[int, str]] = {}  # published shard name -> (size in bytes, sha256 hex)
        self._part = 0
        self._file = self._tar = None
        self._tmp_path = self._final_path = ""
        self._bytes = 0

    def current_shard(self) -> str:
        return fmt.shard_name(self.partition, self.task_index, self._part)

    def _open(self) -> None:
        self._final_path = join(self.out_dir, self.current_shard())
        self._tmp_path = f"{self._final_path}{TMP_MARK}w"
        self._file = _Digesting(self.fs.open(self._tmp_path, "wb"))
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT)
        self._bytes = 0

    def write(self, key: str, members: dict[str, bytes]) -> str:
        """Add one sample; returns the shard name it went into."""
        if self._tar is None:
            self._open()
        shard = self.current_shard()
        # json first: a streaming reader learns the sample's frame counts before its frames.
        for ext in sorted(members, key=lambda e: (e != "json", e != "cls", e)):
            data = members[ext]
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode = len(data), _MTIME, 0o444
            info.uname = info.gname = "flowprep"
            self._tar.addfile(info, io.BytesIO(data))
            self._bytes += len(data) + 512
        if self._bytes >= self.max_bytes:
            self._publish()
            self._part += 1
        return shard

    def _publish(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        self._file.close()
        self.fs.mv(self._tmp_path, self._final_path)
        name = fmt.shard_name(self.partition, self.task_index, self._part)
        self.published.append(name)
        self.digests[name] = (self._file.size, self._file.sha256.hexdigest())
        self._tar = self._file = None

    def close(self) -> list[str]:
        self._publish()
        return self.published

    def abort(self) -> None:
        """Discard the open shard. Called while an error propagates, often the storage's own (a full
        disk fails closing the tar too), so closing may fail: the temporary file is removed anyway and
        the caller's error, not a second one from here, is the one raised."""
        if self._tar is None:
            return
        for close in (self._tar.close, self._file.close):
            try:
                close()
            except Exception:  # the file is being thrown away; its error says nothing new
                pass
        try:
            self.fs.rm(self._tmp_path)
        except FileNotFoundError:
            pass
        except Exception as exc:  # the store is down: the next run's merge deletes temporaries
            log.warning("could not remove %s (%r); the next run removes it", self._tmp_path, exc)
        self._tar = self._file = None


class _Digesting:
    """A write-only file that hashes what passes through it: the digest costs no second read of the shard."""

    def __init__(self, file):
        self.file, self.sha256, self.size = file, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.file.write(data)

    def tell(self) -> int:
        return self.size

    def close(self) -> None:
        self.file.close()


def task_shard_paths(fs, out_dir: str, partition: str, task_index: int) -> list[str]:
    """Every published or temporary shard file of one task (to clear before the task re-runs)."""
    prefix = fmt.shard_name(partition, task_index, 0)[: -len("000.tar")]
    return [p for p in fs.glob(join(out_dir, prefix + "*")) if p.rsplit("/", 1)[-1].startswith(prefix)]
