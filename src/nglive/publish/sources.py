"""What a publication copies: the current generation of every bound source, read from
the Store in one go so later edits cannot tear it."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .errors import PublishError


@dataclass
class SourceFiles:
    """One generated source: its published name (``{layer}/{source}``) and files."""

    name: str
    layer: str
    files: dict[str, bytes]


def _generation_files(store, prefix: str, number: int) -> dict[str, bytes]:
    gen = store.current(prefix)
    base = f"{prefix}/{number}/"
    if gen is not None and gen.number == number:
        keys = list(gen.keys)
    else:  # superseded since it was shown (an edit landed meanwhile): list what is left
        keys = [k[len(base):] for k in store.list(base)]
    files = {}
    for key in keys:
        value = store.read(base + key)
        if value is None:
            raise PublishError(f"generation {number} of {prefix!r} was deleted while it "
                               "was being published; publish again")
        files[key] = value
    return files


def viewer_sources(viewer, layers=None) -> tuple[list[SourceFiles], list[str]]:
    """The sources of ``viewer``'s bound layers (or of the named ones), brought up to
    date with their tables first. Returns the sources and the layer names."""
    bound = viewer.layers
    if layers is None:
        names = list(bound)
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
        unknown = [n for n in names if n not in bound]
        if unknown:
            raise PublishError(f"layers {unknown} are not bound layers of this viewer "
                               f"(bound: {sorted(bound)})")
    out = []
    for name in names:
        layer = bound[name]
        try:
            # an edit made in the same cell is not seen by the post-cell check yet
            layer.refresh(wait=True)
        except Exception as e:  # noqa: BLE001 - reported with the layer's name
            raise PublishError(f"layer {name!r} cannot be regenerated from its table: "
                               f"{type(e).__name__}: {e}; fix it, or publish without it "
                               "(layers=[...])") from e
        if layer.error:
            raise PublishError(f"layer {name!r} shows an error ({layer.error}); fix its "
                               "table, or publish without it (layers=[...])")
        for key, src in layer.sources.items():
            if not src.writes_files or key not in layer.generations:
                continue
            prefix = f"{layer.prefix}/{key}"
            out.append(SourceFiles(prefix, name, _generation_files(
                viewer.store, prefix, layer.generations[key])))
    return out, names


def store_sources(store) -> list[SourceFiles]:
    """The current generation of every prefix of a Store (layer = first path part)."""
    out = []
    for prefix in store.prefixes():
        gen = store.current(prefix)
        out.append(SourceFiles(prefix, prefix.split("/", 1)[0],
                               _generation_files(store, prefix, gen.number)))
    return out


def state_from_sources(sources: list[SourceFiles], public: dict[str, str]) -> dict:
    """A Neuroglancer state showing ``sources`` of a bare Store: one layer per layer name,
    typed from each source's ``info``."""
    layers: dict[str, dict] = {}
    for src in sources:
        try:
            kind = json.loads(src.files.get("info", b"{}")).get("@type", "")
        except ValueError:
            kind = ""
        layer_type = "annotation" if kind == "neuroglancer_annotations_v1" else "segmentation"
        layer = layers.setdefault(src.layer, {"type": layer_type, "source": [],
                                              "name": src.layer})
        layer["source"].append("precomputed://" + public[src.name])
    return {"dimensions": {"x": [1e-9, "m"], "y": [1e-9, "m"], "z": [1e-9, "m"]},
            "layers": list(layers.values()), "layout": "xy-3d"}
