"""The published Neuroglancer state: sources moved from the kernel to the public URL,
and the :class:`Published` result that hands it on."""

from __future__ import annotations

import copy
import json
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PublishError

DEFAULT_SITE = "https://neuroglancer-demo.appspot.com/"


def check_public_url(url: str) -> str:
    """``url`` without a trailing slash, if it looks like an HTTP(S) base; else raise.

    Examples
    --------
    >>> check_public_url("https://example.org/data/")
    'https://example.org/data'
    >>> check_public_url("example.org/data")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nglive.publish.errors.PublishError: url='example.org/data' is not an HTTP(S) base URL...
    """
    parsed = urllib.parse.urlparse(url) if isinstance(url, str) else None
    if (parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc
            or parsed.query or parsed.fragment or any(c.isspace() for c in url)):
        raise PublishError(f"url={url!r} is not an HTTP(S) base URL (expected e.g. "
                           "https://host/path, the address the destination is served from)")
    return url.rstrip("/")


def check_site(site: str) -> str:
    """A Neuroglancer client URL without a fragment; a bare host or directory gets a
    trailing ``/``, a page (``…/index.html``) is kept as it is."""
    parsed = urllib.parse.urlparse(site) if isinstance(site, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise PublishError(f"site={site!r} is not the HTTP(S) address of a Neuroglancer "
                           f"client (e.g. {DEFAULT_SITE})")
    site = site.split("#", 1)[0]
    if parsed.path.rsplit("/", 1)[-1].endswith(".html"):
        return site
    return site.rstrip("/") + "/"


def _source_urls(source) -> list:
    if source is None:
        return []
    return list(source) if isinstance(source, list) else [source]


def rewrite_sources(state: dict, token: str, public: dict[str, str]) -> tuple[dict, list[str]]:
    """Point sources served by the kernel (``…/nglive/{token}/{path}/{n}``) at
    ``public[path]``.

    Kernel sources that are not published are removed, and a layer left with no source
    is removed too (a CAVE segmentation keeps its graphene source when its nglive
    properties are not published). Returns the new state and the names of the layers
    that lost a source.
    """
    state = copy.deepcopy(state)
    marker = f"/nglive/{token}/"
    pattern = re.compile(r"^(?P<scheme>[a-z0-9+]+://)?.*" + re.escape(marker)
                         + r"(?P<path>.+?)/(?P<n>\d+)/?$")
    skipped, kept_layers = [], []
    for layer in state.get("layers", []):
        original = layer.get("source")
        sources, lost = [], False
        for src in _source_urls(original):
            url = src.get("url") if isinstance(src, dict) else src
            if not isinstance(url, str) or marker not in url:
                sources.append(src)
                continue
            m = pattern.match(url)
            target = public.get(m.group("path")) if m else None
            if target is None:
                lost = True
                continue
            new_url = (m.group("scheme") or "precomputed://") + target
            sources.append({**src, "url": new_url} if isinstance(src, dict) else new_url)
        if lost:
            skipped.append(layer.get("name"))
        if original is not None:
            if not sources:
                continue
            layer["source"] = sources if isinstance(original, list) else sources[0]
        kept_layers.append(layer)
    state["layers"] = kept_layers
    names = {la.get("name") for la in kept_layers}
    selected = state.get("selectedLayer")
    if isinstance(selected, dict) and selected.get("layer") not in names:
        state.pop("selectedLayer")
    return state, skipped


def check_no_kernel_urls(state: dict, forbidden: list[str]) -> None:
    """Raise if any text in ``state`` still names the kernel's server or token."""
    text = json.dumps(state)
    found = [f for f in forbidden if f and f in text]
    if not found:
        return
    bad_layers = [la.get("name") for la in state.get("layers", [])
                  if any(f in json.dumps(la) for f in found)]
    raise PublishError(
        "the published state would still point at the kernel's server "
        f"(layers {bad_layers or '(view settings)'}); publish those layers too "
        "(layers=None) or remove them from the viewer")


@dataclass
class Published:
    """A publication: where it went, the state that shows it, and links to it.

    Attributes
    ----------
    dest : str
        The destination (``file://`` for directories).
    base_url : str
        The public HTTP(S) base the sources point at.
    state : dict
        The Neuroglancer state with published sources (remote layers unchanged).
    sources : dict
        ``{layer name: [public source URLs]}`` of what was published.
    skipped : list
        Layers served by the kernel that were not published (left out of ``state``).
    files, bytes_total : int
        Files and bytes of the publication; ``files_written``/``bytes_written`` what this
        call uploaded (unchanged files are not written again), ``files_copied``/
        ``bytes_copied`` what it copied within the destination instead (unchanged shards
        of a changed index).
    """

    dest: str
    base_url: str
    state: dict
    sources: dict[str, list[str]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    files: int = 0
    bytes_total: int = 0
    files_written: int = 0
    bytes_written: int = 0
    files_copied: int = 0
    bytes_copied: int = 0
    files_deleted: int = 0
    seconds: float = 0.0
    site: str = DEFAULT_SITE

    def __repr__(self) -> str:
        return (f"<Published {self.dest} -> {self.base_url}: {len(self.sources)} layers, "
                f"{self.files} files; wrote {self.files_written} files "
                f"({self.bytes_written:,} bytes)"
                + (f", copied {self.files_copied}" if self.files_copied else "")
                + f" in {self.seconds:.2f} s>")

    def url(self, site: str | None = None) -> str:
        """A Neuroglancer link with the whole state in its fragment."""
        import neuroglancer

        prefix = check_site(site or self.site)
        return neuroglancer.to_url(neuroglancer.ViewerState(self.state), prefix=prefix)

    def state_url(self, site: str | None = None) -> str:
        """A short Neuroglancer link that loads ``state.json`` from the publication."""
        return f"{check_site(site or self.site)}#!{self.base_url}/state.json"

    def write_state(self, path: str | os.PathLike) -> Path:
        """Write the state as JSON to a local file; returns its path."""
        out = Path(path)
        out.write_text(json.dumps(self.state, indent=1))
        return out
