"""Stale root ids: which are outdated, and what they became (``update_ids``).

Batched over the whole table, never per row: one ``is_latest_roots`` pass over the
unique ids, one ``get_roots`` pass over the supervoxels of stale rows (an exact
answer), and for stale ids without a supervoxel one ``leaves_many`` pass plus one
``get_roots`` pass over their leaves at ``stop_layer`` — the overlap caveclient's
``suggest_latest_roots`` computes one id at a time. Suggested successors are checked
with ``is_latest_roots`` (``suggest_latest_roots`` can answer ids that are not current,
caveclient #141). Each pass is split into requests of ``batch_size`` ids.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..formats.validation import as_uint64_ids
from .errors import cave_call, require_caveclient

BATCH_SIZE = 50_000  # ids per is_latest_roots / roots_binary request
LEAVES_BATCH = 500  # roots per leaves_many request
SUGGEST_LAYERS_BELOW_TOP = 4  # caveclient's suggest_latest_roots default stop layer


def _progress(total: int, desc: str, show: bool | None):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional: no bar
        return None
    if show is None:
        show = total > 1
    return tqdm(total=total, desc=desc, leave=False) if show else None


def _batched(fn, values: np.ndarray, size: int, bar) -> np.ndarray:
    parts = []
    for start in range(0, len(values), size):
        parts.append(np.asarray(fn(values[start:start + size])))
        if bar is not None:
            bar.update(1)
    return np.concatenate(parts) if parts else np.zeros(0)


def _n_batches(n: int, size: int) -> int:
    return -(-n // size)


def is_current(client, ids, *, timestamp=None, batch_size: int = BATCH_SIZE,
               progress: bool | None = None) -> np.ndarray:
    """Whether each root id is current (at ``timestamp``); id 0 ("no segment") counts as
    current. One ``is_latest_roots`` request per ``batch_size`` unique ids.

    Examples
    --------
    >>> is_current(None, [0, 0]).tolist()   # no request for id 0
    [True, True]
    """
    ids = as_uint64_ids(np.asarray(ids), column="root id")
    unique, inverse = np.unique(ids, return_inverse=True)
    latest = np.ones(len(unique), bool)
    ask = unique != 0
    if ask.any():
        cg = client.chunkedgraph
        bar = _progress(_n_batches(int(ask.sum()), batch_size), "is_latest_roots", progress)
        with cave_call("is_latest_roots", server=getattr(client, "local_server", None)):
            latest[ask] = _batched(lambda part: cg.is_latest_roots(part, timestamp=timestamp),
                                   unique[ask], batch_size, bar).astype(bool)
        if bar is not None:
            bar.close()
    return latest[inverse.reshape(-1)]


def _get_roots(client, svs: np.ndarray, timestamp, batch_size: int, progress) -> np.ndarray:
    cg = client.chunkedgraph
    bar = _progress(_n_batches(len(svs), batch_size), "get_roots", progress)
    with cave_call("get_roots", server=getattr(client, "local_server", None)):
        out = _batched(lambda part: cg.get_roots(part, timestamp=timestamp), svs,
                       batch_size, bar)
    if bar is not None:
        bar.close()
    return out.astype(np.uint64)


def suggest_successors(client, stale: np.ndarray, *, timestamp=None,
                       stop_layer: int | None = None, batch_size: int = BATCH_SIZE,
                       progress: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The successor of each stale root with the largest overlap, and that overlap.

    The overlap is the fraction of the old root's nodes at ``stop_layer`` that the
    successor holds now, as ``suggest_latest_roots(..., return_fraction_overlap=True)``
    computes it; successors that are not current get new id 0 and overlap 0.0.
    """
    stale = np.asarray(stale, np.uint64)
    if len(stale) == 0:
        return np.zeros(0, np.uint64), np.zeros(0)
    cg = client.chunkedgraph
    server = getattr(client, "local_server", None)
    if stop_layer is None:
        with cave_call("segmentation info", server=server):
            n_layers = cg.segmentation_info.get("graph", {}).get("n_layers", 6)
        stop_layer = max(1, n_layers - SUGGEST_LAYERS_BELOW_TOP)
    leaves, owners = [], []
    bar = _progress(_n_batches(len(stale), LEAVES_BATCH), "leaves", progress)
    with cave_call("leaves of stale roots", server=server):
        for start in range(0, len(stale), LEAVES_BATCH):
            part = stale[start:start + LEAVES_BATCH]
            found = cg.get_leaves_many(part, stop_layer=stop_layer)
            by_root = {np.uint64(k): np.atleast_1d(np.asarray(v)) for k, v in found.items()}
            for i, rid in enumerate(part, start):
                got = by_root.get(rid, np.zeros(0, np.int64)).astype(np.uint64)
                leaves.append(got)
                owners.append(np.full(len(got), i, np.int64))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    flat = np.concatenate(leaves) if leaves else np.zeros(0, np.uint64)
    owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
    total = np.bincount(owner, minlength=len(stale))
    roots = _get_roots(client, flat, timestamp, batch_size, progress)
    keep = roots != 0
    owner, roots = owner[keep], roots[keep]
    new = np.zeros(len(stale), np.uint64)
    overlap = np.zeros(len(stale))
    if len(roots):
        order = np.lexsort((roots, owner))
        owner, roots = owner[order], roots[order]
        starts = np.flatnonzero(np.r_[True, (owner[1:] != owner[:-1])
                                      | (roots[1:] != roots[:-1])])
        counts = np.diff(np.r_[starts, len(roots)])
        run_owner, run_root = owner[starts], roots[starts]
        # per owner the run with the most leaves (ties: the smaller id, as np.unique sorts)
        best = np.lexsort((-counts, run_owner))
        first = np.r_[True, run_owner[best][1:] != run_owner[best][:-1]]
        pick = best[first]
        new[run_owner[pick]] = run_root[pick]
        overlap[run_owner[pick]] = counts[pick] / np.maximum(total[run_owner[pick]], 1)
    answered = new != 0
    if answered.any():
        ok = is_current(client, new[answered], timestamp=timestamp, batch_size=batch_size,
                        progress=progress)
        bad = np.flatnonzero(answered)[~ok]
        new[bad] = 0
        overlap[bad] = 0.0
    return new, overlap


def _inputs(ids_or_df, id_col: str, supervoxel_col):
    """(ids, supervoxels or None, index) from the accepted input forms."""
    if isinstance(ids_or_df, pd.DataFrame):
        df = ids_or_df
        if id_col not in df.columns:
            raise KeyError(f"no id column {id_col!r}; the table has {list(map(str, df.columns))}")
        if supervoxel_col is None and id_col.endswith("root_id"):
            guess = id_col[: -len("root_id")] + "supervoxel_id"
            supervoxel_col = guess if guess in df.columns else None
        if supervoxel_col and supervoxel_col not in df.columns:
            raise KeyError(f"no supervoxel column {supervoxel_col!r}; the table has "
                           f"{list(map(str, df.columns))}")
        ids = as_uint64_ids(df[id_col], column=id_col)
        svs = (as_uint64_ids(df[supervoxel_col], column=supervoxel_col)
               if supervoxel_col else None)
        return ids, svs, df.index
    if isinstance(ids_or_df, pd.Series):
        return as_uint64_ids(ids_or_df, column=ids_or_df.name or "id"), None, ids_or_df.index
    values = np.atleast_1d(np.asarray(ids_or_df))
    return as_uint64_ids(values, column="id"), None, pd.RangeIndex(len(values))


def update_ids(client, ids_or_df, *, id_col: str = "pt_root_id", supervoxel_col=None,
               timestamp=None, stop_layer: int | None = None, batch_size: int = BATCH_SIZE,
               progress: bool | None = None) -> pd.DataFrame:
    """The current root id of each id, with a confidence, batched over the whole input.

    Parameters
    ----------
    client : caveclient.CAVEclient
        A client of the datastack the ids come from.
    ids_or_df : DataFrame, Series, array or list
        Root ids, or a table holding them in ``id_col``.
    id_col : str
        The root-id column of a table.
    supervoxel_col : str, False or None
        A supervoxel column giving exact answers for its rows. None: the column next
        to ``id_col`` (``pt_supervoxel_id`` for ``pt_root_id``) if the table has it;
        False: do not use supervoxels.
    timestamp : datetime, optional
        The moment to update to (now by default).
    stop_layer : int, optional
        Chunkedgraph layer for overlap suggestions (caveclient's default: the number of
        layers minus 4).
    batch_size : int
        Ids per request.
    progress : bool, optional
        A tqdm bar (when tqdm is installed); by default when there is more than one batch.

    Returns
    -------
    DataFrame
        One row per input row (same index): ``old_id``, ``new_id`` (uint64),
        ``confidence`` and ``changed``, as fafbseg's and crantpy's ``update_ids``:
        confidence 1.0 for current ids and ids answered by their supervoxel, the
        overlap fraction of the suggested successor otherwise, and 0.0 with new id 0
        when nothing current could be found. Id 0 stays 0 with confidence 1.0.

    Examples
    --------
    >>> update_ids(client, syn, id_col="pre_pt_root_id")  # doctest: +SKIP
              old_id             new_id  confidence  changed
    0  8646911350000...  8646911350000...         1.0    False
    """
    require_caveclient()
    ids, svs, index = _inputs(ids_or_df, id_col, supervoxel_col)
    current = is_current(client, ids, timestamp=timestamp, batch_size=batch_size,
                         progress=progress)
    new = ids.copy()
    confidence = np.ones(len(ids))
    stale = ~current
    exact = np.zeros(len(ids), bool)
    if svs is not None:
        exact = stale & (svs != 0)
        if exact.any():
            sv_unique, sv_inverse = np.unique(svs[exact], return_inverse=True)
            roots = _get_roots(client, sv_unique, timestamp, batch_size, progress)
            found = roots[sv_inverse.reshape(-1)]
            rows = np.flatnonzero(exact)
            new[rows] = found
            exact[rows[found == 0]] = False  # an unknown supervoxel: suggest instead
    guess = stale & ~exact
    if guess.any():
        unique, inverse = np.unique(ids[guess], return_inverse=True)
        successor, overlap = suggest_successors(client, unique, timestamp=timestamp,
                                                stop_layer=stop_layer, batch_size=batch_size,
                                                progress=progress)
        new[guess] = successor[inverse.reshape(-1)]
        confidence[guess] = overlap[inverse.reshape(-1)]
    return pd.DataFrame({"old_id": ids, "new_id": new, "confidence": confidence,
                         "changed": new != ids}, index=index)
