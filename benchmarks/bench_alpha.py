"""Alpha-shape meshing: nglive's cached AlphaShaper against the reference tools, one run.

Shapes (points sampled uniformly, fixed seeds), each with an analytic volume:

- ``torus``: solid torus R=3, r=1 (volume 2 pi^2 R r^2);
- ``neuron``: a soma (ball r=1.5) with five straight tubes (r=0.35, 7 long from the
  centre) in well separated directions (volume: ball plus the tube parts outside it);
- ``shell``: a noisy sphere surface (radius 1, radial noise sd 0.01), the way a tracer
  outlines a region; the reference volume is the enclosed ball (4/3 pi).

Tools, all run to the tracertools acceptance rule (start at 1.5 x the median
nearest-neighbour distance, alpha x 1.5 per pass until the mesh is one body and
watertight, at most 15 passes):

- ``tracertools``: the loop as users run it, a full rebuild per pass (scipy Delaunay,
  circumradii, boundary by counting faces, trimesh checks) and ``fix_normals`` at the end;
- ``open3d``: ``TriangleMesh.create_from_point_cloud_alpha_shape`` with the
  ``TetraMesh`` computed once and passed in on every pass;
- ``alphashape``: the ``alphashape`` package (its alpha is 1 / radius), only up to
  ``--alphashape-max`` points and under ``--alphashape-timeout``;
- ``nglive``: ``AlphaShaper(points)``, ``auto_alpha()``, ``mesh(alpha)``; its row also
  carries ``optimal_alpha()`` time and the volume of the optimal shape with cavities
  filled.

"Re-mesh" is the time to get a mesh at a new alpha (1.1 x the accepted one) after the
first: a full pass for tracertools and alphashape, one call with the cached tetra mesh
for open3d, ``mesh()`` for nglive. Every (tool, shape, n) runs in a fresh subprocess;
peak memory is that process's ``ru_maxrss`` (interpreter and imports included; the
baseline after imports is reported beside it).

    python benchmarks/bench_alpha.py                       # 1k, 10k, 100k
    python benchmarks/bench_alpha.py --sizes 1000 10000 --tools nglive open3d

Writes benchmarks/results/alpha.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "alpha.json"
SHAPES = ("torus", "neuron", "shell")
TOOLS = ("tracertools", "open3d", "alphashape", "nglive")

SOMA_R, TUBE_R, TUBE_L = 1.5, 0.35, 7.0
TUBE_DIRS = [(1, 0, 0), (-0.5, 0.85, 0.1), (-0.5, -0.8, 0.3), (0.1, 0.2, 1), (0.2, -0.1, -1)]


# ---------------------------------------------------------------------------- shapes
def _unit(v):
    import numpy as np

    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _tube_inside_ball() -> float:
    import numpy as np

    h = np.sqrt(SOMA_R**2 - TUBE_R**2)
    return np.pi * TUBE_R**2 * h + np.pi * (2 * SOMA_R**3 / 3 - SOMA_R**2 * h + h**3 / 3)


def true_volume(shape: str) -> float:
    import numpy as np

    if shape == "torus":
        return 2 * np.pi**2 * 3.0 * 1.0**2
    if shape == "neuron":
        tube = np.pi * TUBE_R**2 * TUBE_L - _tube_inside_ball()
        return 4 / 3 * np.pi * SOMA_R**3 + len(TUBE_DIRS) * tube
    if shape == "shell":
        return 4 / 3 * np.pi
    raise ValueError(shape)


def make_points(shape: str, n: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    if shape == "torus":
        out, have = [], 0
        while have < n:
            p = rng.uniform([-4, -4, -1], [4, 4, 1], (2 * n, 3))
            q = np.hypot(p[:, 0], p[:, 1]) - 3.0
            p = p[q**2 + p[:, 2] ** 2 < 1.0]
            out.append(p)
            have += len(p)
        return np.concatenate(out)[:n]
    if shape == "shell":
        d = _unit(rng.normal(size=(n, 3)))
        return d * (1 + 0.01 * rng.normal(size=n))[:, None]
    if shape == "neuron":
        # uniform over the union: sample each part by its full volume, drop tube points
        # inside the soma (covered by soma samples), then take n at random
        v_ball = 4 / 3 * np.pi * SOMA_R**3
        v_tube = np.pi * TUBE_R**2 * TUBE_L
        scale = 1.05 * n / true_volume("neuron")  # samples per unit volume, 5 % spare
        parts = []
        k = int(scale * v_ball) + 1
        d = _unit(rng.normal(size=(k, 3)))
        parts.append(d * SOMA_R * rng.random(k)[:, None] ** (1 / 3))
        for axis in _unit(TUBE_DIRS):
            k = int(scale * v_tube) + 1
            helper = np.array([0.0, 0.0, 1.0]) if abs(axis[2]) < 0.9 else np.array([1.0, 0, 0])
            u = _unit(np.cross(axis, helper))
            w = np.cross(axis, u)
            r = TUBE_R * np.sqrt(rng.random(k))
            th = rng.uniform(0, 2 * np.pi, k)
            z = rng.uniform(0, TUBE_L, k)
            p = z[:, None] * axis + (r * np.cos(th))[:, None] * u + (r * np.sin(th))[:, None] * w
            parts.append(p[np.linalg.norm(p, axis=1) > SOMA_R])
        p = np.concatenate(parts)
        assert len(p) >= n, "increase the oversampling factor"
        return p[rng.permutation(len(p))[:n]]
    raise ValueError(shape)


# ---------------------------------------------------------------------------- tools
def start_alpha(points) -> float:
    import numpy as np
    from scipy.spatial import cKDTree

    d, _ = cKDTree(points).query(points, k=2)
    return 1.5 * float(np.median(d[:, 1]))


def tracertools_pass(points, alpha):
    """One full pass as tracertools runs it: triangulate, radii, boundary, trimesh."""
    import numpy as np
    import trimesh
    from scipy.spatial import Delaunay

    tet = Delaunay(points).simplices
    p = points[tet]
    a, b, c = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]
    det = np.einsum("ij,ij->i", a, np.cross(b, c))
    num = (
        (a * a).sum(1)[:, None] * np.cross(b, c)
        + (b * b).sum(1)[:, None] * np.cross(c, a)
        + (c * c).sum(1)[:, None] * np.cross(a, b)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        radius = np.linalg.norm(num, axis=1) / np.abs(2 * det)
    kept = tet[radius < alpha]
    faces = np.concatenate(
        [kept[:, [1, 2, 3]], kept[:, [0, 2, 3]], kept[:, [0, 1, 3]], kept[:, [0, 1, 2]]]
    )
    _, first, count = np.unique(
        np.sort(faces, axis=1), axis=0, return_index=True, return_counts=True
    )
    return trimesh.Trimesh(points, faces[first[count == 1]])


def accept_loop(points, mesher, max_passes: int = 15):
    """The tracertools acceptance loop around any ``mesher(alpha) -> trimesh``."""
    alpha = start_alpha(points)
    first_single = None
    for i in range(max_passes):
        mesh = mesher(alpha)
        if mesh.body_count == 1 and mesh.is_watertight:
            return mesh, alpha, i + 1, True
        if first_single is None and mesh.body_count == 1:
            first_single = (mesh, alpha, i + 1)
        alpha *= 1.5
    if first_single is not None:
        return (*first_single, False)
    return mesh, alpha / 1.5, max_passes, False


def timed_loop(points, mesher, t0: float):
    """The acceptance loop, timed from ``t0`` (set-up included), then one re-mesh."""
    mesh, alpha, passes, ok = accept_loop(points, mesher)
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    mesher(alpha * 1.1)
    remesh = time.perf_counter() - t1
    return mesh, dict(alpha=alpha, passes=passes, accepted=ok, first_s=first, remesh_s=remesh)


def run_tracertools(points):
    t0 = time.perf_counter()
    mesh, alpha, passes, ok = accept_loop(points, lambda a: tracertools_pass(points, a))
    mesh.fix_normals()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    tracertools_pass(points, alpha * 1.1).fix_normals()
    remesh = time.perf_counter() - t0
    return mesh, dict(alpha=alpha, passes=passes, accepted=ok, first_s=first, remesh_s=remesh)


def run_open3d(points):
    import numpy as np
    import open3d as o3d
    import trimesh

    t0 = time.perf_counter()
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    tetra, pt_map = o3d.geometry.TetraMesh.create_from_point_cloud(pcd)

    def mesher(alpha):
        m = o3d.geometry.TriangleMesh.create_from_point_cloud_alpha_shape(pcd, alpha, tetra, pt_map)
        return trimesh.Trimesh(np.asarray(m.vertices), np.asarray(m.triangles))

    return timed_loop(points, mesher, t0)


def run_alphashape(points):
    import alphashape

    def mesher(alpha):
        return alphashape.alphashape(points, 1.0 / alpha)

    return timed_loop(points, mesher, time.perf_counter())


def run_nglive(points):
    from nglive.mesh import AlphaShaper

    t0 = time.perf_counter()
    shaper = AlphaShaper(points)
    t_tri = time.perf_counter() - t0
    alpha = shaper.auto_alpha()
    mesh = shaper.mesh(alpha)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    shaper.mesh(alpha * 1.1)
    remesh = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep = shaper.report(alpha * 1.1)
    report_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    opt = shaper.optimal_alpha()
    opt_s = time.perf_counter() - t0
    filled = shaper.report(opt, fill_cavities=True)
    extra = dict(
        triangulation_s=t_tri,
        report_s=report_s,
        report_watertight=rep.watertight,
        optimal_alpha=opt,
        optimal_alpha_s=opt_s,
        optimal_filled_is_volume=filled.is_volume,
        optimal_filled_volume=filled.volume,
    )
    info = dict(alpha=alpha, passes=None, accepted=True, first_s=first, remesh_s=remesh)
    info.update(extra)
    return mesh, info


RUNNERS = {
    "tracertools": run_tracertools,
    "open3d": run_open3d,
    "alphashape": run_alphashape,
    "nglive": run_nglive,
}
IMPORTS = {
    "tracertools": "scipy.spatial trimesh",
    "open3d": "open3d trimesh",
    "alphashape": "alphashape trimesh",
    "nglive": "nglive.mesh",
}


def child(tool: str, shape: str, n: int) -> dict:
    import importlib

    import numpy as np

    for mod in IMPORTS[tool].split():
        importlib.import_module(mod)  # imports are not part of the timing
    points = make_points(shape, n)
    base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mesh, info = RUNNERS[tool](points)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from nglive.mesh import surface_check

    truth = true_volume(shape)
    info.update(
        peak_mb=peak_mb,
        baseline_mb=base_mb,
        n_faces=int(len(mesh.faces)),
        watertight=bool(mesh.is_watertight),
        is_volume=bool(len(mesh.faces) and surface_check(mesh.faces).is_manifold),
        volume=float(mesh.volume),
        volume_error=float(mesh.volume / truth - 1),
    )
    if "optimal_filled_volume" in info:
        info["optimal_volume_error"] = float(info["optimal_filled_volume"] / truth - 1)
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in info.items()}


def available(tool: str) -> str | None:
    """None if the tool can run here, else the reason it cannot."""
    import importlib.util

    mod = {"open3d": "open3d", "alphashape": "alphashape"}.get(tool)
    if mod and importlib.util.find_spec(mod) is None:
        return f"{mod} is not installed (pip install {mod})"
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=SHAPES)
    ap.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    ap.add_argument("--timeout", type=float, default=420, help="seconds per run")
    ap.add_argument("--alphashape-max", type=int, default=10000)
    ap.add_argument("--alphashape-timeout", type=float, default=90)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--child", nargs=3, metavar=("TOOL", "SHAPE", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        tool, shape, n = args.child
        print(json.dumps(child(tool, shape, int(n))))
        return

    runs = []
    started = time.perf_counter()
    for n in args.sizes:
        for shape in args.shapes:
            for tool in args.tools:
                row = dict(tool=tool, shape=shape, n=n)
                reason = available(tool)
                timeout = args.timeout
                if tool == "alphashape":
                    timeout = args.alphashape_timeout
                    if n > args.alphashape_max:
                        reason = reason or f"skipped above {args.alphashape_max} points (too slow)"
                if reason:
                    row["status"] = reason
                else:
                    cmd = [sys.executable, __file__, "--child", tool, shape, str(n)]
                    try:
                        out = subprocess.run(
                            cmd, capture_output=True, text=True, timeout=timeout, check=True
                        )
                        row.update(json.loads(out.stdout.strip().splitlines()[-1]))
                        row["status"] = "ok"
                    except subprocess.TimeoutExpired:
                        row["status"] = f"timeout after {timeout:.0f} s"
                    except subprocess.CalledProcessError as exc:
                        row["status"] = "error: " + (exc.stderr.strip().splitlines() or ["?"])[-1]
                runs.append(row)
                print(_line(row), flush=True)
    result = dict(
        benchmark="alpha shapes: first watertight mesh, re-mesh, memory, volume error",
        machine=dict(
            python=platform.python_version(),
            platform=platform.platform(),
            cpus=__import__("os").cpu_count(),
            load_average_at_end=list(__import__("os").getloadavg()),
        ),
        true_volumes={s: true_volume(s) for s in args.shapes},
        wall_s=time.perf_counter() - started,
        runs=runs,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out} in {result['wall_s']:.0f} s")


def _line(r: dict) -> str:
    head = f"{r['shape']:7s} {r['n']:>7d} {r['tool']:12s}"
    if r.get("status") != "ok":
        return f"{head} {r.get('status')}"
    extra = ""
    if r["tool"] == "nglive":
        extra = (
            f"  [tri {r['triangulation_s']:.2f} s, optimal {r['optimal_alpha_s']:.3f} s, "
            f"optimal+filled vol err {r['optimal_volume_error']:+.1%}]"
        )
    return (
        f"{head} first {r['first_s']:8.3f} s  remesh {r['remesh_s']:8.4f} s  "
        f"peak {r['peak_mb']:6.0f} MB  watertight {r['watertight']!s:5s} "
        f"volume {r['is_volume']!s:5s} vol err {r['volume_error']:+.1%}{extra}"
    )


if __name__ == "__main__":
    main()
