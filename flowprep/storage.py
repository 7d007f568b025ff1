"""The filesystem edge: local paths and object-store URLs through fsspec, with atomic publication.

Credentials and endpoints come from the environment as boto3 / s3fs read them (AWS_ACCESS_KEY_ID,
AWS_ENDPOINT_URL, ...). Publication is atomic: data goes to a temporary name in the same folder and
is then renamed (an object store's copy is atomic per object), so a reader never sees a partial file.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from contextlib import contextmanager

TMP_MARK = ".tmp-"  # temporary names hold this; `verify` and resume ignore and clean them


class MissingDependency(RuntimeError):
    """An optional package a URL needs is not installed; the message is one line saying what to install."""


def filesystem(url: str):
    """(fs, path) for a local path or URL such as s3://bucket/prefix (gs://, az://, ... when installed)."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url, **storage_options(url))
    except ImportError as exc:  # fsspec's own: 'Install s3fs to access S3', raised deep in its registry
        protocol = url.split("://", 1)[0]
        hint = "pip install 'flowprep[s3]'" if protocol in ("s3", "s3a") else f"{exc} (its fsspec implementation)"
        raise MissingDependency(f"{url}: {protocol}:// needs a package that is not installed: {hint}") from None
    return fs, path.rstrip("/") if path not in ("/", "") else path


def storage_options(url: str) -> dict:
    """fsspec options for `url`. Remote listings are never cached: other processes (the workers)
    publish files, and a stale listing would hide a task's part from resume or verify."""
    if is_local(url):
        return {}
    options: dict = {"use_listings_cache": False}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if url.startswith(("s3://", "s3a://")) and endpoint:
        # botocore >= 1.31 reads AWS_ENDPOINT_URL itself; older ones (and so older s3fs) do not.
        options["endpoint_url"] = endpoint
    return options


def join(base: str, *parts: str) -> str:
    return posixpath.join(base, *parts) if "://" in base or base.startswith("/") else os.path.join(base, *parts)


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


@contextmanager
def atomic_open(fs, path: str):
    """Write to '<path>.tmp-<uuid>' and rename to `path` only when the block finishes without error."""
    tmp = f"{path}{TMP_MARK}{uuid.uuid4().hex[:8]}"
    fs.makedirs(posixpath.dirname(path), exist_ok=True)  # local folders must exist; a no-op on object stores
    try:
        with fs.open(tmp, "wb") as f:
            yield f
        fs.mv(tmp, path)
    except BaseException:
        try:
            fs.rm(tmp)
        except FileNotFoundError:
            pass
        raise


def write_bytes_atomic(fs, path: str, data: bytes) -> None:
    with atomic_open(fs, path) as f:
        f.write(data)


def remove_quietly(fs, paths: list[str]) -> None:
    for path in paths:
        try:
            fs.rm(path)
        except FileNotFoundError:
            pass
