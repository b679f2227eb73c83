"""Where a publication goes: a local directory or a bucket, and its public HTTP(S) base.

A destination writes whole files (never partial ones: readers see the old or the new
bytes of a key), reads back what nglive wrote before (the publication record), and
deletes what nglive retired. Directories are written with plain files renamed into
place; ``gs://`` and ``s3://`` through cloud-files when it is installed (it sets
``Content-Type``, ``Cache-Control`` and ``Content-Encoding``, which tensorstore's
kvstore drivers cannot), else through tensorstore.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import PublishError

# How many files are written at once: bucket writes are latency-bound.
PARALLEL_WRITES = 16


@dataclass(frozen=True)
class FileOut:
    """One file to publish, with the HTTP metadata a bucket should serve it with."""

    key: str
    data: bytes | bytearray | memoryview
    content_type: str
    cache_control: str
    gzip: bool = False


class Destination:
    """The interface publishing writes through (one subclass per kind of place)."""

    #: The destination as given, normalised (``file://`` paths absolute).
    url: str
    #: The public HTTP(S) base it is served from, if it can be derived.
    public_url: str | None = None
    #: Whether ``Content-Encoding: gzip`` can be stored with a file.
    can_gzip: bool = False

    def check(self) -> None:
        """Raise PublishError if the destination cannot be read and written."""
        raise NotImplementedError

    def check_names(self, keys: Iterable[str]) -> None:
        """Raise PublishError for a key this destination cannot hold."""

    def read(self, key: str) -> bytes | None:
        """The bytes of ``key``, or None if it does not exist."""
        raise NotImplementedError

    def write(self, files: list[FileOut], progress: Callable[[int], None]) -> None:
        """Write every file whole, several at once; ``progress(nbytes)`` as they land."""
        try:
            _run_parallel(self._write_one, files, progress)
        except Exception as e:  # noqa: BLE001 - reported as what the destination said
            raise self._error(e) from e

    def _write_one(self, f: FileOut) -> int:
        """Write one file whole; return its size."""
        raise NotImplementedError

    def _error(self, error: BaseException) -> BaseException:
        return error

    def delete(self, keys: list[str]) -> None:
        """Delete ``keys`` (missing ones are ignored)."""
        raise NotImplementedError

    def copy(self, pairs: list[tuple[str, str]]) -> set[str]:
        """Copy ``(existing key, new key)`` pairs within the destination, whole; return
        the new keys that were not copied (the caller uploads those)."""
        return {dst for _src, dst in pairs}


# ----------------------------------------------------------------------------- directory


# Characters Windows forbids in file names; legacy mesh manifests are named "{id}:0".
_WINDOWS_FORBIDDEN = set('<>:"|?*')


class DirectoryDestination(Destination):
    """A local directory, served later by any static server (``nglive serve DIR``).

    Each file is written to a temporary name in its directory and renamed into place,
    so a reader sees the old file or the new one, never a part.
    """

    def __init__(self, path: str | os.PathLike, *, windows: bool | None = None):
        self.root = Path(path).expanduser().absolute()
        self.url = self.root.as_uri()
        self.windows = sys.platform == "win32" if windows is None else windows

    def __repr__(self) -> str:
        return f"DirectoryDestination({str(self.root)!r})"

    def check(self) -> None:
        existing = self.root
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            raise PublishError(f"cannot publish to {self.root}: {existing} is a file, "
                               "not a directory")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PublishError(f"cannot publish to {self.root}: {existing} is not writable")

    def check_names(self, keys: Iterable[str]) -> None:
        if not self.windows:
            return
        for key in keys:
            if _WINDOWS_FORBIDDEN & set(key):
                raise PublishError(
                    f"{key!r} cannot be a file name on Windows (Neuroglancer's legacy mesh "
                    "manifests are named '<segment id>:0'); publish meshes to a bucket "
                    "(gs://, s3://) or to a directory under WSL instead")

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, files: list[FileOut], progress: Callable[[int], None]) -> None:
        for parent in sorted({self._path(f.key).parent for f in files}):
            parent.mkdir(parents=True, exist_ok=True)
        super().write(files, progress)

    def _write_one(self, f: FileOut) -> int:
        path = self._path(f.key)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".nglive-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(f.data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return len(f.data)

    def copy(self, pairs: list[tuple[str, str]]) -> set[str]:
        # Files are only ever replaced by a rename, never changed in place, so a hard
        # link shares the bytes safely (a copy where links are not possible).
        failed = set()
        for src, dst in pairs:
            source, target = self._path(src), self._path(dst)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".nglive-{os.getpid()}-{target.name}.tmp")
            try:
                tmp.unlink(missing_ok=True)
                try:
                    os.link(source, tmp)
                except OSError:
                    shutil.copyfile(source, tmp)
                os.replace(tmp, target)
            except OSError:
                tmp.unlink(missing_ok=True)
                failed.add(dst)
        return failed

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)
        # empty directories left behind by retired versions go too
        for parent in sorted({self._path(k).parent for k in keys}, key=lambda p: -len(p.parts)):
            while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent


# ----------------------------------------------------------------------------- buckets


def _split_bucket_url(url: str) -> tuple[str, str, str]:
    parsed = urllib.parse.urlparse(url)
    bucket, path = parsed.netloc, parsed.path.strip("/")
    if not bucket:
        raise PublishError(f"{url!r} names no bucket; expected {parsed.scheme}://BUCKET/PATH")
    return parsed.scheme, bucket, path


def bucket_public_url(url: str, endpoint: str | None = None) -> str:
    """The HTTPS base a public ``gs://`` or ``s3://`` location is served from.

    Examples
    --------
    >>> bucket_public_url("gs://my-bucket/pub/v1")
    'https://storage.googleapis.com/my-bucket/pub/v1'
    >>> bucket_public_url("s3://my-bucket/pub")
    'https://my-bucket.s3.amazonaws.com/pub'
    >>> bucket_public_url("s3://b/p", endpoint="http://127.0.0.1:9000")
    'http://127.0.0.1:9000/b/p'
    """
    scheme, bucket, path = _split_bucket_url(url)
    if endpoint:
        base = f"{endpoint.rstrip('/')}/{bucket}"
    elif scheme == "gs":
        base = f"https://storage.googleapis.com/{bucket}"
    else:
        base = f"https://{bucket}.s3.amazonaws.com"
    return f"{base}/{path}" if path else base


def _bucket_error(url: str, error: BaseException) -> PublishError:
    text = f"{type(error).__name__}: {error}"
    hint = ""
    if isinstance(error, KeyError) and "AWS_SESSION_TOKEN" in str(error):
        return PublishError(
            f"cannot use {url}: cloud-files reads AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY from the environment only together with "
            "AWS_SESSION_TOKEN; set it (to an empty string if you have none) or put the "
            "keys in ~/.cloudvolume/secrets/aws-secret.json")
    lowered = text.lower()
    if any(s in lowered for s in ("credential", "token", "403", "forbidden", "denied",
                                  "unauthorized", "signature", "aws_session")):
        hint = (" (check the credentials: for s3, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
                "or ~/.cloudvolume/secrets/aws-secret.json; for gs, "
                "~/.cloudvolume/secrets/google-secret.json or application default "
                "credentials)")
    elif "nosuchbucket" in lowered or "bucket does not exist" in lowered:
        hint = " (the bucket does not exist: create it first)"
    return PublishError(f"cannot use {url}: {text}{hint}")


class CloudFilesDestination(Destination):
    """A ``gs://`` or ``s3://`` location written with cloud-files (HTTP metadata kept)."""

    can_gzip = True

    def __init__(self, url: str, *, endpoint: str | None = None):
        from cloudfiles import CloudFiles

        scheme, bucket, path = _split_bucket_url(url)
        self.url = f"{scheme}://{bucket}/{path}".rstrip("/")
        self.public_url = bucket_public_url(self.url, endpoint)
        self._scheme, self._bucket, self._endpoint = scheme, bucket, endpoint
        # cloud-files takes a custom endpoint inside the path ("s3://http://host/bucket")
        cf_path = f"{scheme}://{endpoint.rstrip('/')}/{bucket}/{path}" if endpoint else self.url
        self._cf = CloudFiles(cf_path, num_threads=PARALLEL_WRITES, progress=False)

    def __repr__(self) -> str:
        return f"CloudFilesDestination({self.url!r})"

    def check(self) -> None:
        try:
            if self._scheme == "s3":
                self._check_s3_bucket()
            else:
                # listing raises for a missing bucket or refused credentials (exists()
                # would answer False); cloud-files retries errors for ~15 s first
                next(iter(self._cf.list(prefix="nglive-publication.json")), None)
        except Exception as e:  # noqa: BLE001 - any client error means "cannot publish here"
            raise _bucket_error(self.url, e) from e

    def _check_s3_bucket(self) -> None:
        # One HEAD with cloud-files' own credentials and no retries: a missing bucket or
        # refused credentials are reported at once instead of after cloud-files' backoff.
        import boto3
        from botocore.config import Config
        from cloudfiles.secrets import aws_credentials

        creds = aws_credentials(self._bucket, "s3")
        client = boto3.client(
            "s3", endpoint_url=self._endpoint,
            aws_access_key_id=creds.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=creds.get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=creds.get("AWS_SESSION_TOKEN") or None,
            region_name=creds.get("AWS_DEFAULT_REGION", "us-east-1"),
            config=Config(retries={"max_attempts": 1}, connect_timeout=10, read_timeout=30))
        try:
            client.head_bucket(Bucket=self._bucket)
        except client.exceptions.ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchBucket"):
                raise RuntimeError("NoSuchBucket: the bucket does not exist") from None
            raise

    def read(self, key: str) -> bytes | None:
        try:
            return self._cf.get(key)
        except Exception as e:  # noqa: BLE001
            raise _bucket_error(self.url, e) from e

    def _write_one(self, f: FileOut) -> int:
        self._cf.put(f.key, bytes(f.data), content_type=f.content_type,
                     compress="gzip" if f.gzip else None, cache_control=f.cache_control,
                     raw=False)
        return len(f.data)

    def _error(self, error: BaseException) -> BaseException:
        return _bucket_error(self.url, error)

    def delete(self, keys: list[str]) -> None:
        if keys:
            self._cf.delete(keys)

    def copy(self, pairs: list[tuple[str, str]]) -> set[str]:
        if not pairs:
            return set()
        # within one bucket cloud-files copies server side (S3 CopyObject, GCS copy),
        # keeping Content-Type, Cache-Control and Content-Encoding
        try:
            # (dict paths: cloud-files' bucket-internal copy does not take pairs)
            self._cf.transfer_to(self._cf, paths=[{"path": src, "dest_path": dst}
                                                  for src, dst in pairs])
        except Exception:  # noqa: BLE001 - the caller uploads what was not copied
            return {dst for _src, dst in pairs if not self._cf.exists(dst)}
        return set()


class KvStoreDestination(Destination):
    """Any tensorstore kvstore URL (``gs://``, ``s3://``, ``memory://``…), written whole
    per key. tensorstore stores no Content-Type or Cache-Control: buckets serve their
    defaults (GCS caches public objects for an hour), which the content-addressed layout
    tolerates (see :mod:`nglive.publish.layout`)."""

    def __init__(self, url: str, *, endpoint: str | None = None):
        import tensorstore as ts

        self.url = url.rstrip("/")
        spec: str | dict = self.url + "/"
        if url.startswith(("gs://", "s3://")):
            self.public_url = bucket_public_url(self.url, endpoint)
            if endpoint:
                scheme, bucket, path = _split_bucket_url(url)
                spec = {"driver": "s3" if scheme == "s3" else "gcs", "bucket": bucket,
                        "path": path + "/" if path else "", "endpoint": endpoint}
                if scheme == "s3":
                    spec["aws_region"] = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        try:
            self._kv = ts.KvStore.open(spec).result()
        except Exception as e:  # noqa: BLE001
            raise _bucket_error(self.url, e) from e

    def __repr__(self) -> str:
        return f"KvStoreDestination({self.url!r})"

    def check(self) -> None:
        import tensorstore as ts

        try:  # a listing fails for a missing bucket, where a read of one key does not
            self._kv.list(ts.KvStore.KeyRange("nglive-publication.json",
                                              "nglive-publication.jsoo")).result()
        except Exception as e:  # noqa: BLE001
            raise _bucket_error(self.url, e) from e

    def read(self, key: str) -> bytes | None:
        try:
            result = self._kv.read(key).result()
        except Exception as e:  # noqa: BLE001
            raise _bucket_error(self.url, e) from e
        return bytes(result.value) if result.state == "value" else None

    def _write_one(self, f: FileOut) -> int:
        self._kv.write(f.key, bytes(f.data)).result()
        return len(f.data)

    def _error(self, error: BaseException) -> BaseException:
        return _bucket_error(self.url, error)

    def delete(self, keys: list[str]) -> None:
        for f in [self._kv.delete(k) for k in keys]:
            f.result()


# ----------------------------------------------------------------------------- choosing


def open_destination(dest, *, endpoint: str | None = None,
                     backend: str | None = None) -> Destination:
    """The destination for ``dest``: a path, ``file://``, ``gs://``, ``s3://`` URL, or a
    :class:`Destination` (returned as is).

    ``backend`` forces ``"cloudfiles"`` or ``"tensorstore"`` for buckets (default:
    cloud-files when installed). ``endpoint`` is an S3-compatible server's URL.

    Examples
    --------
    >>> open_destination("/tmp/pub").url
    'file:///tmp/pub'
    >>> open_destination("ftp://host/x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nglive.publish.errors.PublishError: cannot publish to 'ftp://host/x': unknown scheme...
    """
    if isinstance(dest, Destination):
        return dest
    if not isinstance(dest, str | os.PathLike):
        raise PublishError(f"dest must be a path or a URL string, got {type(dest).__name__}")
    text = os.fspath(dest)
    if not text:
        raise PublishError("dest is empty; give a directory path or a gs:// / s3:// URL")
    scheme = urllib.parse.urlparse(text).scheme if "://" in text else ""
    if scheme in ("", "file"):
        path = urllib.parse.unquote(urllib.parse.urlparse(text).path) if scheme else text
        return DirectoryDestination(path)
    if scheme in ("gs", "s3"):
        if backend not in (None, "cloudfiles", "tensorstore"):
            raise PublishError(f"backend={backend!r}; accepted: 'cloudfiles', 'tensorstore'")
        if backend != "tensorstore":
            try:
                import cloudfiles  # noqa: F401
            except ImportError:
                if backend == "cloudfiles":
                    raise PublishError("backend='cloudfiles' needs cloud-files: "
                                       "pip install 'nglive[publish]'") from None
            else:
                return CloudFilesDestination(text, endpoint=endpoint)
        return KvStoreDestination(text, endpoint=endpoint)
    if scheme == "memory":
        return KvStoreDestination(text)
    raise PublishError(f"cannot publish to {text!r}: unknown scheme {scheme!r} "
                       "(accepted: a directory path, file://, gs://, s3://)")


def _run_parallel(fn: Callable[[FileOut], int], files: list[FileOut],
                  progress: Callable[[int], None]) -> None:
    if len(files) <= 1:
        for f in files:
            progress(fn(f))
        return
    # a task per batch of files: thousands of small mesh files would otherwise spend
    # more time in the pool's bookkeeping than in writing
    per_task = max(1, min(64, len(files) // (4 * PARALLEL_WRITES)))
    batches = [files[i:i + per_task] for i in range(0, len(files), per_task)]

    def run(batch: list[FileOut]) -> int:
        return sum(fn(f) for f in batch)

    with concurrent.futures.ThreadPoolExecutor(PARALLEL_WRITES) as pool:
        futures = [pool.submit(run, b) for b in batches]
        try:
            for fut in concurrent.futures.as_completed(futures):
                progress(fut.result())
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
