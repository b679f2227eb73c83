"""Re-encode only the skeletons whose nodes changed: per-skeleton digests and their files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..formats.annotations.sharding import choose_sharding
from ..formats.sharded import pack_shards
from ..formats.skeletons import SHARD_ABOVE, encode_skeletons
from ..formats.validation import as_uint64_ids


def skeleton_digests(table: pd.DataFrame, id_col: str) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]:
    """``(ids, digests, sid per row)``: a 64-bit digest of each skeleton's rows.

    A digest is the sum of each row's hash times an odd weight from its position in the
    skeleton (uint64, wrapping): an odd weight is invertible mod 2**64, so changing any
    one row always changes the digest; several edits cancel with odds ~2**-64.
    """
    sid = as_uint64_ids(table[id_col], column=id_col)
    rows = pd.util.hash_pandas_object(table, index=False).to_numpy(np.uint64)
    group, ids = pd.factorize(sid)
    ids = np.asarray(ids, np.uint64)
    if not len(ids):
        return ids, np.zeros(0, np.uint64), sid
    order = np.argsort(group, kind="stable")
    counts = np.bincount(group, minlength=len(ids))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    local = (np.arange(len(group)) - np.repeat(starts, counts)).astype(np.uint64)
    weighted = rows[order] * (local * np.uint64(2) + np.uint64(1))
    digests = np.add.reduceat(weighted, starts) ^ counts.astype(np.uint64)
    return ids, digests, sid


class SkeletonCache:
    """The files of the skeletons last encoded, by id, with the digests they came from."""

    def __init__(self):
        self.key = None
        self.ids = np.zeros(0, np.uint64)
        self.digests = np.zeros(0, np.uint64)
        self.files: list[bytes] = []
        self.reencoded = 0  # skeletons encoded by the last call (the rest were reused)

    def encode(self, table: pd.DataFrame, *, id_col: str, key, **keywords) -> dict[str, bytes]:
        """The whole source's files, encoding only skeletons new or changed since the
        last call with the same ``key`` (the encoder settings and columns)."""
        if key != self.key:
            self.__init__()
        ids, digests, sid = skeleton_digests(table, id_col)
        at = pd.Index(self.ids).get_indexer(ids)
        known = at >= 0
        changed = ~known
        changed[known] = self.digests[at[known]] != digests[known]
        rows = pd.Index(sid).isin(ids[changed]) if changed.any() else np.zeros(len(sid), bool)
        # validated and encoded unsharded: one file per changed skeleton
        fresh = encode_skeletons(table[rows], id_col=id_col, sharded=False, **keywords)
        info = json.loads(fresh["info"])
        files = [fresh[str(i)] if c else self.files[a]
                 for i, c, a in zip(ids.tolist(), changed.tolist(), at.tolist(), strict=True)]
        out: dict[str, bytes] = {}
        if len(ids) > SHARD_ABOVE:
            sizes = np.fromiter((len(f) for f in files), np.int64, len(files))
            bounds = np.concatenate([[0], np.cumsum(sizes)])
            info["sharding"] = choose_sharding(len(ids), int(bounds[-1]))
            out.update(pack_shards(ids, b"".join(files), bounds, info["sharding"]))
        else:
            out.update(zip(map(str, ids.tolist()), files, strict=True))
        out["info"] = json.dumps(info).encode()
        self.key, self.ids, self.digests, self.files = key, ids, digests, files
        self.reencoded = int(changed.sum())
        return out
