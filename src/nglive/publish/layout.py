"""The published layout of a source: data under content-tagged names, switch files last.

A re-publish must never overwrite a file a reader of the previous publication may still
fetch. Neuroglancer finds a source's data through a few small *switch* files — the
``info`` (annotation index directories are named in it), the ``{id}:0`` manifests of
legacy meshes (they list the fragment files) — so the data files are published under
names that carry a hash of their content (``by_id.3f9c…/0.shard``,
``fragment/7.a1b2…``), and the switch files, rewritten to those names, are written
after them. An unchanged index or fragment keeps its name, so it is not written again;
a changed one gets a new name next to the old one, which stays readable until it is
retired. Shard files themselves are copied byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

TAG_LENGTH = 16  # hex digits of the content tag: 64 bits


@dataclass
class SourceLayout:
    """The files of one source as published: ``data`` first, then ``switch`` in order."""

    data: dict[str, bytes] = field(default_factory=dict)
    switch: dict[str, bytes] = field(default_factory=dict)  # insertion order = write order
    kind: str = "unknown"
    # content hash of every file, computed once (the largest cost of an unchanged publish)
    digests: dict[str, str] = field(default_factory=dict)

    @property
    def files(self) -> dict[str, bytes]:
        return {**self.data, **self.switch}

    def digest_of(self, key: str) -> str:
        if key not in self.digests:
            value = self.data[key] if key in self.data else self.switch[key]
            self.digests[key] = digest(value)
        return self.digests[key]


def digest(data) -> str:
    """A content hash of ``data`` (hex), used for tags and change detection."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _tag(parts) -> str:
    """A tag over (name, digest) pairs."""
    h = hashlib.blake2b(digest_size=8)
    for name, d in parts:
        h.update(name.encode() + b"\0" + d.encode() + b"\0")
    return h.hexdigest()[:TAG_LENGTH]


def publish_layout(files: dict[str, bytes]) -> SourceLayout:
    """How the files of one generated source are published.

    Parameters
    ----------
    files : dict
        ``{key relative to the source: bytes}``, as nglive's encoders write them.

    Returns
    -------
    SourceLayout

    Examples
    --------
    >>> import json
    >>> out = publish_layout({"info": b'{"@type": "neuroglancer_legacy_mesh"}',
    ...                       "7:0": b'{"fragments": ["fragment/7"]}',
    ...                       "fragment/7": b"mesh bytes"})
    >>> [k.split(".")[0] for k in out.data]
    ['fragment/7']
    >>> json.loads(out.switch["7:0"])["fragments"] == list(out.data)
    True
    >>> list(out.switch)[-1]
    'info'
    """
    info_bytes = files.get("info")
    try:
        info = json.loads(info_bytes) if info_bytes is not None else {}
    except ValueError:
        info = {}
    kind = info.get("@type") if isinstance(info, dict) else None
    if kind == "neuroglancer_annotations_v1":
        return _annotations(files, info)
    if kind == "neuroglancer_legacy_mesh":
        return _legacy_meshes(files)
    if kind == "neuroglancer_segment_properties" and set(files) == {"info"}:
        return SourceLayout(switch={"info": info_bytes}, kind=kind)
    # Unknown formats are copied as they are, info last: safe for a first publication,
    # not against readers during a re-publish.
    data = {k: v for k, v in files.items() if k != "info"}
    switch = {"info": info_bytes} if info_bytes is not None else {}
    return SourceLayout(data=data, switch=switch, kind=str(kind or "unknown"))


def _annotations(files: dict[str, bytes], info: dict) -> SourceLayout:
    entries = [info.get("by_id")] + list(info.get("relationships", [])) + list(
        info.get("spatial", []))
    entries = [e for e in entries if isinstance(e, dict) and "key" in e]
    by_dir: dict[str, list[str]] = {e["key"]: [] for e in entries}
    loose = []
    for key in files:
        if key == "info":
            continue
        head, _, rest = key.partition("/")
        if head in by_dir and rest:
            by_dir[head].append(key)
        else:
            loose.append(key)
    layout = SourceLayout(kind="neuroglancer_annotations_v1")
    renamed: dict[str, str] = {}
    for directory, keys in by_dir.items():
        keys.sort()
        digests = {k: digest(files[k]) for k in keys}
        tag = _tag((k[len(directory) + 1:], digests[k]) for k in keys)
        new_dir = f"{directory}.{tag}"
        renamed[directory] = new_dir
        for k in keys:
            name = new_dir + k[len(directory):]
            layout.data[name] = files[k]
            layout.digests[name] = digests[k]
    for k in loose:  # files outside any index (none today): copied as they are
        layout.data[k] = files[k]
    for e in entries:
        e["key"] = renamed[e["key"]]
    layout.switch["info"] = json.dumps(info, indent=1).encode()
    return layout


def _legacy_meshes(files: dict[str, bytes]) -> SourceLayout:
    layout = SourceLayout(kind="neuroglancer_legacy_mesh")
    manifests = sorted(k for k in files if k.endswith(":0") and "/" not in k)
    listed: set[str] = set()
    for m in manifests:
        try:
            fragments = json.loads(files[m])["fragments"]
        except (ValueError, KeyError, TypeError):
            layout.switch[m] = files[m]
            continue
        published = []
        for frag in fragments:
            if frag not in files:
                published.append(frag)  # dangling already; leave the reference alone
                continue
            d = digest(files[frag])
            name = f"{frag}.{_tag([('', d)])}"
            layout.data[name] = files[frag]
            layout.digests[name] = d
            listed.add(frag)
            published.append(name)
        layout.switch[m] = json.dumps({"fragments": published}).encode()
    for k, v in files.items():  # anything not reached through a manifest
        if k != "info" and k not in listed and k not in layout.switch:
            layout.data[k] = v
    layout.switch["info"] = files["info"]
    return layout
