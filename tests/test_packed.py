"""PackedFiles: many small files in one buffer, cheap to pickle across processes."""

from __future__ import annotations

import pickle
import pickletools

import numpy as np
import pytest

from nglive.packed import PackedFiles


def test_pack_round_trips_a_mapping():
    files = {"info": b"{}", "by_id/1": b"abc", "by_id/2": b"", "x/y/z": bytes(range(256))}
    packed = PackedFiles.pack(files)
    assert dict(packed) == files and list(packed) == list(files)
    assert packed.get("nope") is None and "by_id/2" in packed
    with pytest.raises(KeyError):
        packed["nope"]
    assert PackedFiles.pack(packed) is packed


def test_pickle_is_compact_and_exact():
    rng = np.random.default_rng(0)
    files = {f"by_id/{i}": rng.bytes(int(rng.integers(0, 40))) for i in range(50_000)}
    packed = PackedFiles.pack(files)
    raw = pickle.dumps(packed, protocol=5)
    # a handful of objects (names, buffer, offsets), not one per file: cheap to unpickle
    assert sum(1 for _ in pickletools.genops(raw)) < 200
    again = pickle.loads(raw)
    assert dict(again) == files


def test_offsets_must_match_names():
    with pytest.raises(ValueError, match="offsets"):
        PackedFiles(["a", "b"], b"xy", np.array([0, 2]))
