"""A chunkedgraph in memory for the fake CAVE server: supervoxels, roots, splits, merges.

Every root has a creation time, an expiry time (infinity while current), its
supervoxels and its successors. Edits are recorded as (time, supervoxels, new roots),
so the root of any supervoxel at any time can be replayed, vectorised over arrays of
supervoxels, which is what ``roots_binary``, ``is_latest_roots``, ``node/leaves`` and
``lineage_graph_multiple`` answer from.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

ROOT_BASE = np.uint64(864691135000000000)  # looks like a minnie65 root id
SV_BASE = np.uint64(88000000000000000)


@dataclass
class Root:
    id: int
    created: float
    members: np.ndarray  # supervoxel indexes
    expired: float = float("inf")
    successors: list[int] = field(default_factory=list)
    operation: int = 0


class FakeGraph:
    """Roots over ``n_cells * sv_per_cell`` supervoxels, created at ``t0``.

    Supervoxel ids are ``SV_BASE + i + 1`` (id 0 means "no supervoxel"); cell ``c``
    starts as root ``ROOT_BASE + c * 1000`` owning supervoxels ``c * sv_per_cell`` ...
    """

    def __init__(self, n_cells: int, sv_per_cell: int, t0: float):
        self._lock = threading.Lock()
        n = n_cells * sv_per_cell
        self.n_cells, self.sv_per_cell = n_cells, sv_per_cell
        self.sv_ids = SV_BASE + np.arange(1, n + 1, dtype=np.uint64)
        self.t0 = t0
        self.initial = np.repeat(ROOT_BASE + np.arange(n_cells, dtype=np.uint64) * 1000,
                                 sv_per_cell)
        self.current = self.initial.copy()
        self.roots: dict[int, Root] = {}
        for c in range(n_cells):
            rid = int(ROOT_BASE) + c * 1000
            self.roots[rid] = Root(rid, t0, np.arange(c * sv_per_cell, (c + 1) * sv_per_cell))
        self.edits: list[tuple[float, np.ndarray, np.ndarray]] = []
        self._next_root = int(ROOT_BASE) + n_cells * 1000 + 1
        self._next_operation = 1
        self._tables: tuple | None = None

    # -- edits -------------------------------------------------------------------------

    def _new_root_id(self) -> int:
        rid = self._next_root
        self._next_root += 7
        return rid

    def cell_root(self, cell: int) -> int:
        """The root a cell started as."""
        return int(self.initial[cell * self.sv_per_cell])

    def split(self, root: int, keep_fraction: float, at: float) -> tuple[int, int]:
        """Split ``root`` at time ``at``: the first ``keep_fraction`` of its supervoxels
        become one new root, the rest another. Returns (bigger part, smaller part)."""
        with self._lock:
            old = self._alive(root, at)
            k = max(1, min(len(old.members) - 1, int(round(len(old.members) * keep_fraction))))
            parts = [old.members[:k], old.members[k:]]
            new = self._replace([old], parts, at)
        return new[0], new[1]

    def merge(self, roots: list[int], at: float) -> int:
        """Merge ``roots`` into one new root at time ``at``."""
        with self._lock:
            olds = [self._alive(r, at) for r in roots]
            members = np.concatenate([o.members for o in olds])
            return self._replace(olds, [members], at)[0]

    def _alive(self, root: int, at: float) -> Root:
        r = self.roots.get(int(root))
        if r is None or not (r.created <= at < r.expired):
            raise ValueError(f"root {root} is not current at {at}")
        if self.edits and at < self.edits[-1][0]:
            raise ValueError("edits must be made in time order")
        return r

    def _replace(self, olds: list[Root], parts: list[np.ndarray], at: float) -> list[int]:
        op = self._next_operation
        self._next_operation += 1
        new_ids = []
        for members in parts:
            rid = self._new_root_id()
            self.roots[rid] = Root(rid, at, members, operation=op)
            new_ids.append(rid)
            self.current[members] = np.uint64(rid)
            self.edits.append((at, members, np.full(len(members), rid, np.uint64)))
        for old in olds:
            old.expired = at
            old.successors.extend(new_ids)
        self._tables = None
        return new_ids

    # -- queries ----------------------------------------------------------------------

    def roots_at(self, t: float | None) -> np.ndarray:
        """The root of every supervoxel (by index) at time ``t`` (None: now)."""
        with self._lock:
            if t is None or not self.edits or t >= self.edits[-1][0]:
                return self.current
            roots = self.initial.copy()
            for when, members, new in self.edits:
                if when > t:
                    break
                roots[members] = new
            return roots

    def sv_index(self, svs: np.ndarray) -> np.ndarray:
        """Index of each supervoxel id, -1 for 0 and unknown ids."""
        svs = np.asarray(svs, np.uint64)
        pos = np.searchsorted(self.sv_ids, svs)
        pos = np.minimum(pos, len(self.sv_ids) - 1)
        return np.where(self.sv_ids[pos] == svs, pos, -1)

    def get_roots(self, svs: np.ndarray, t: float | None) -> np.ndarray:
        """Roots of supervoxel ids at ``t``; 0 for 0 and unknown supervoxels."""
        idx = self.sv_index(svs)
        roots = self.roots_at(t)
        return np.where(idx >= 0, roots[np.maximum(idx, 0)], np.uint64(0)).astype(np.uint64)

    def _lifetimes(self):
        with self._lock:
            if self._tables is None:
                ids = np.array(sorted(self.roots), np.uint64)
                created = np.array([self.roots[int(i)].created for i in ids])
                expired = np.array([self.roots[int(i)].expired for i in ids])
                self._tables = (ids, created, expired)
            return self._tables

    def is_latest(self, roots: np.ndarray, t: float | None) -> np.ndarray:
        """Whether each id is a root that exists at ``t`` (None: now)."""
        ids, created, expired = self._lifetimes()
        roots = np.asarray(roots, np.uint64)
        pos = np.minimum(np.searchsorted(ids, roots), len(ids) - 1)
        known = ids[pos] == roots
        if t is None:
            return known & np.isinf(expired[pos])
        return known & (created[pos] <= t) & (expired[pos] > t)

    def created(self, roots: np.ndarray) -> np.ndarray:
        """Creation time of each root (NaN for unknown ids)."""
        ids, created, _ = self._lifetimes()
        roots = np.asarray(roots, np.uint64)
        pos = np.minimum(np.searchsorted(ids, roots), len(ids) - 1)
        return np.where(ids[pos] == roots, created[pos], np.nan)

    def leaves(self, root: int) -> np.ndarray | None:
        """Supervoxel ids of a root (as it was while it existed), or None if unknown."""
        r = self.roots.get(int(root))
        return None if r is None else self.sv_ids[r.members]

    def lineage(self, roots, t_past: float | None, t_future: float | None) -> dict:
        """The node-link lineage graph of ``roots``: successors created up to
        ``t_future`` and predecessors alive after ``t_past``."""
        future = np.inf if t_future is None else t_future
        past = -np.inf if t_past is None else t_past
        predecessors: dict[int, list[int]] = {}
        for r in self.roots.values():
            for s in r.successors:
                predecessors.setdefault(s, []).append(r.id)
        seen, stack, links = set(), [int(r) for r in roots], set()
        while stack:
            rid = stack.pop()
            if rid in seen or rid not in self.roots:
                continue
            seen.add(rid)
            for s in self.roots[rid].successors:
                if self.roots[s].created <= future:
                    links.add((rid, s))
                    stack.append(s)
            for p in predecessors.get(rid, []):
                if self.roots[p].expired >= past:
                    links.add((p, rid))
                    stack.append(p)
        return {
            "directed": True, "multigraph": False, "graph": {},
            "nodes": [{"id": rid, "timestamp": self.roots[rid].created,
                       "operation_id": self.roots[rid].operation} for rid in sorted(seen)],
            "links": [{"source": a, "target": b} for a, b in sorted(links)],
        }

    def past_ids(self, roots, t_past: float | None) -> tuple[dict, dict]:
        """(past_id_map, future_id_map) between ``roots`` and the roots at ``t_past``."""
        then = self.roots_at(t_past)
        past_map, future_map = {}, {}
        for rid in roots:
            r = self.roots.get(int(rid))
            before = [] if r is None else np.unique(then[r.members]).tolist()
            past_map[str(int(rid))] = before
            for p in before:
                future_map.setdefault(str(p), []).append(int(rid))
        return past_map, future_map
