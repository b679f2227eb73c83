"""``publish_store``: copy the current generations to a directory or bucket, incrementally
and safely, and return the state that shows them."""

from __future__ import annotations

import json
import os
import time

from .destination import FileOut, open_destination
from .errors import PublishError
from .layout import SourceLayout, digest, publish_layout
from .record import RECORD_KEY, PublicationRecord, Retired, SourceRecord
from .sources import SourceFiles, state_from_sources, store_sources, viewer_sources
from .state import (
    DEFAULT_SITE,
    Published,
    check_no_kernel_urls,
    check_public_url,
    check_site,
    rewrite_sources,
)

STATE_KEY = "state.json"
#: Retired versions stay readable this long (GCS caches public objects for an hour).
DEFAULT_RETAIN_SECONDS = 3600.0
# Below this many bytes to write, no progress bar unless asked for.
_PROGRESS_MIN_BYTES = 16 << 20

_NO_CACHE = "no-cache"
_IMMUTABLE = "public, max-age=31536000, immutable"


def publish_store(
    store_or_viewer,
    dest,
    *,
    layers=None,
    url: str | None = None,
    site: str = DEFAULT_SITE,
    compress: bool = False,
    endpoint: str | None = None,
    backend: str | None = None,
    retain: float = DEFAULT_RETAIN_SECONDS,
    overwrite: bool = False,
    force: bool = False,
    progress: bool | None = None,
) -> Published:
    """Publish a viewer's bound layers (or a Store's sources) to a directory or bucket.

    Every source is copied from its current generation to ``{layer}/{source}/`` under
    ``dest``, and a Neuroglancer state whose sources point at ``url`` is returned (and
    written to ``dest/state.json``). Publishing again writes only what changed, and
    never overwrites a file a reader of the previous publication may still fetch: index
    directories and mesh fragments carry a content tag in their names, and each source's
    ``info`` (and mesh manifests) are written after its data. A failure half-way leaves
    the previous publication readable.

    Parameters
    ----------
    store_or_viewer : nglive.Viewer or nglive.Store
        A viewer (its bound layers, brought up to date with their tables, and its
        state) or a Store (every current generation; one layer per layer name).
    dest : str or path
        A local directory, ``file://``, ``gs://`` or ``s3://`` URL.
    layers : list of str, optional
        Publish only these bound layers (others served by the kernel are left out of
        the state).
    url : str, optional
        The public HTTP(S) base ``dest`` is served from. Derived for ``gs://`` and
        ``s3://`` (``https://storage.googleapis.com/BUCKET/…``,
        ``https://BUCKET.s3.amazonaws.com/…``); required for a directory.
    site : str
        The Neuroglancer client that :meth:`Published.url` links to.
    compress : bool
        Store files that are read whole (not ``.shard`` files, which are read by byte
        range) gzip-compressed with ``Content-Encoding: gzip``. Buckets through
        cloud-files only: a static server cannot serve that from a directory.
    endpoint : str, optional
        An S3-compatible server (e.g. MinIO) for ``s3://`` destinations.
    backend : {"cloudfiles", "tensorstore"}, optional
        How buckets are written (default: cloud-files when installed, which stores
        Content-Type and Cache-Control; tensorstore cannot).
    retain : float
        Seconds a superseded version stays at the destination for readers still on it.
    overwrite : bool
        Publish over sources that something other than nglive wrote at ``dest``.
    force : bool
        Write every file, even those the publication record says are there already.
    progress : bool, optional
        Show a progress bar (default: when more than 16 MB are written).

    Returns
    -------
    Published
        ``.state``, ``.url(site)``, ``.state_url(site)``, ``.write_state(path)``.

    Raises
    ------
    PublishError
        Before anything is written, for an unknown or unwritable destination, missing
        credentials, a ``url`` that is not an HTTP(S) base, a layer whose table has an
        error, or a state that would still point at the kernel's server.

    Examples
    --------
    >>> import tempfile, nglive
    >>> store = nglive.Store()
    >>> _ = store.write_generation("cells/properties", {"info": b'{"@type": '
    ...     b'"neuroglancer_segment_properties", "inline": {"ids": [], "properties": []}}'})
    >>> pub = nglive.publish_store(store, tempfile.mkdtemp(), url="https://example.org/pub")
    >>> pub.sources
    {'cells': ['precomputed://https://example.org/pub/cells/properties']}
    """
    started = time.monotonic()
    destination = open_destination(dest, endpoint=endpoint, backend=backend)
    if url is None:
        if destination.public_url is None:
            raise PublishError(
                f"publishing to {destination.url} needs url=: the HTTP(S) address it will "
                "be served from (e.g. the one `nglive serve DIR` prints)")
        url = destination.public_url
    base_url = check_public_url(url)
    site = check_site(site)
    if compress and not destination.can_gzip:
        raise PublishError(f"compress=True needs a bucket that stores Content-Encoding "
                           f"(gs:// or s3:// with cloud-files); {destination.url} cannot")
    if retain < 0:
        raise PublishError(f"retain={retain!r} must be >= 0 seconds")

    viewer = store_or_viewer if hasattr(store_or_viewer, "layers") else None
    if viewer is not None:
        sources, _names = viewer_sources(viewer, layers)
    else:
        if layers is not None:
            raise PublishError("layers= selects layers of a Viewer; a Store is published whole")
        sources = store_sources(store_or_viewer)
    public = {src.name: f"{base_url}/{src.name}" for src in sources}
    if viewer is not None:
        state, skipped = rewrite_sources(viewer.state.to_json(), viewer.server.token, public)
        check_no_kernel_urls(state, _kernel_marks(viewer))
    else:
        state, skipped = state_from_sources(sources, public), []

    layouts = {src.name: publish_layout(src.files) for src in sources}
    all_keys = [f"{name}/{k}" for name, lay in layouts.items() for k in lay.files]
    destination.check_names(all_keys)
    destination.check()
    record = PublicationRecord.from_bytes(destination.read(RECORD_KEY), destination.url)
    if not overwrite:
        _refuse_foreign(destination, record, layouts)

    state_bytes = json.dumps(state, indent=1).encode()
    plan = _plan(layouts, record, compress, force)
    state_changed = force or record.state_digest != digest(state_bytes)
    result = Published(
        dest=destination.url, base_url=base_url, state=state, site=site, skipped=skipped,
        sources=_layer_sources(sources, public),
        files=len(all_keys) + 1, bytes_total=sum(
            len(v) for lay in layouts.values() for v in lay.files.values()) + len(state_bytes))

    retire_all_others = viewer is None or layers is None
    now = time.time()
    if plan.data or plan.switch or plan.copies or state_changed:
        record.pending.update({f.key: d for f, d in plan.data + plan.switch})
        record.pending.update({dst: d for _src, dst, d in plan.copies})
        _save(destination, record)  # the first write: permissions fail here, harmlessly
        with _progress_bar(sum(len(f.data) for f, _ in plan.data + plan.switch),
                           progress) as bar:
            uncopied = destination.copy([(src, dst) for src, dst, _d in plan.copies])
            for _src, dst, d in plan.copies:  # a destination that cannot copy: upload
                if dst in uncopied:
                    plan.data.append((plan.copy_files[dst], d))
            destination.write([f for f, _ in plan.data], bar)
            destination.write([f for f, _ in plan.switch], bar)
        if state_changed:
            destination.write([FileOut(STATE_KEY, state_bytes, "application/json",
                                       _NO_CACHE)], lambda n: None)
        record.state_digest = digest(state_bytes)
        result.files_written = len(plan.data) + len(plan.switch) + int(state_changed)
        result.bytes_written = sum(len(f.data) for f, _ in plan.data + plan.switch) + (
            len(state_bytes) if state_changed else 0)
        result.files_copied = len(plan.copies) - len(uncopied)
        result.bytes_copied = sum(len(plan.copy_files[dst].data) for _s, dst, _d in plan.copies
                                  if dst not in uncopied)
    _update_record(record, layouts, now, retire_all_others)
    doomed = _expired(record, now, retain)
    if doomed or result.files_written or result.files_copied:
        destination.delete(doomed)
        result.files_deleted = len(doomed)
        _save(destination, record)
    result.seconds = time.monotonic() - started
    return result


# Files at least this large are copied within the destination when it already holds the
# same bytes under another name (an unchanged shard of an index that did change).
COPY_MIN_BYTES = 64 << 10


class _Plan:
    def __init__(self):
        self.data: list[tuple[FileOut, str]] = []
        self.switch: list[tuple[FileOut, str]] = []
        self.copies: list[tuple[str, str, str]] = []  # (existing key, new key, digest)
        self.copy_files: dict[str, FileOut] = {}  # the upload to fall back on


def _plan(layouts: dict[str, SourceLayout], record: PublicationRecord, compress: bool,
          force: bool) -> _Plan:
    """The files that differ from what the destination holds, data before switch files.

    A data file whose bytes the destination already holds under another key (a shard
    that did not change, in the new directory of an index that did) is copied there
    instead of uploaded.
    """
    known = record.known()
    by_digest = {d: k for k, d in known.items()}
    plan = _Plan()
    for name, layout in layouts.items():
        for part, target, immutable in ((layout.data, plan.data, True),
                                        (layout.switch, plan.switch, False)):
            for key, value in part.items():
                full = f"{name}/{key}"
                d = layout.digest_of(key)
                if not force and known.get(full) == d:
                    continue
                tagged = immutable and layout.kind != "unknown"
                out = FileOut(full, value, _content_type(key),
                              _IMMUTABLE if tagged else _NO_CACHE,
                              gzip=compress and not key.endswith(".shard"))
                if (tagged and not force and d in by_digest and by_digest[d] != full
                        and len(value) >= COPY_MIN_BYTES):
                    plan.copies.append((by_digest[d], full, d))
                    plan.copy_files[full] = out
                else:
                    target.append((out, d))
    return plan


def _update_record(record: PublicationRecord, layouts: dict[str, SourceLayout], now: float,
                   retire_others: bool) -> None:
    """Make the written files current; retire what the sources no longer use."""
    in_use: set[str] = set()
    for name, layout in layouts.items():
        in_use.update(f"{name}/{k}" for k in layout.files)
    for name, layout in layouts.items():
        rec = record.sources.setdefault(name, SourceRecord())
        new = {f"{name}/{k}": layout.digest_of(k) for k in layout.files}
        old = {k: d for k, d in rec.current.items() if k not in in_use}
        if old:
            rec.retired.append(Retired(now, old))
        rec.current = new
    for name, rec in record.sources.items():
        if name not in layouts and retire_others and rec.current:
            rec.retired.append(Retired(now, rec.current))
            rec.current = {}
    leftovers = {k: d for k, d in record.pending.items() if k not in in_use}
    if leftovers:  # from an attempt that failed half-way: readers may have seen them
        record.sources.setdefault("", SourceRecord()).retired.append(Retired(now, leftovers))
    record.pending = {}


def _expired(record: PublicationRecord, now: float, retain: float) -> list[str]:
    """Retired keys older than ``retain`` that no source uses; dropped from the record."""
    in_use = {k for rec in record.sources.values() for k in rec.current}
    doomed: set[str] = set()
    for rec in record.sources.values():
        keep = []
        for old in rec.retired:
            if now - old.since >= retain:
                doomed.update(k for k in old.files if k not in in_use)
            else:
                keep.append(old)
        rec.retired = keep
    still_retained = {k for rec in record.sources.values() for old in rec.retired
                      for k in old.files}
    for name in [n for n, r in record.sources.items() if not r.current and not r.retired]:
        del record.sources[name]
    return sorted(doomed - still_retained)


def _refuse_foreign(destination, record: PublicationRecord, layouts) -> None:
    for name in layouts:
        if name not in record.sources and destination.read(f"{name}/info") is not None:
            raise PublishError(
                f"{destination.url}/{name} already holds a source that nglive did not "
                "publish there; choose another destination or pass overwrite=True")


def _save(destination, record: PublicationRecord) -> None:
    destination.write([FileOut(RECORD_KEY, record.to_bytes(), "application/json", _NO_CACHE)],
                      lambda n: None)


def _layer_sources(sources: list[SourceFiles], public: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for src in sources:
        out.setdefault(src.layer, []).append("precomputed://" + public[src.name])
    return out


def _kernel_marks(viewer) -> list[str]:
    """Text that would reveal the kernel's server in a state."""
    marks = [viewer.server.token, f"/nglive/{viewer.server.token}"]
    for u in (viewer.server.server_url, getattr(viewer, "server_url", "")):
        if u:
            marks.append(u.rstrip("/"))
    return marks


def _content_type(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    if name == "info" or name.endswith(":0") or name.endswith(".json"):
        return "application/json"
    return "application/octet-stream"


class _progress_bar:
    """A tqdm byte counter (a no-op when small or not wanted), callable with a count."""

    def __init__(self, total: int, wanted: bool | None):
        show = wanted if wanted is not None else total >= _PROGRESS_MIN_BYTES
        self._bar = None
        if show and total:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit="B", unit_scale=True, desc="publishing",
                             disable=os.environ.get("NGLIVE_NO_PROGRESS") == "1")

    def __enter__(self):
        return self

    def __call__(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
