"""A fake CAVE deployment on 127.0.0.1 for tests: caveclient talks to it over real sockets.

One HTTP server plays the global and the local CAVE server: the info service, the
materialization engine (arrow query bodies built the way caveclient reads them), the
chunkedgraph (``is_latest_roots``, ``roots_binary``, leaves, lineage, root timestamps,
past ids, the graphene ``info`` Neuroglancer reads) and the state server (states and
segment-property JSON, with its 2.5 MB property limit). Tables are rows of supervoxels:
a query at a materialization version answers root ids as the chunkedgraph had them at
that version's time, so edits made after it leave stale ids, as on a real server.

Tests change it while it runs: ``split``/``merge`` roots, ``add_rows``, ``materialize``
a new version, ``fail_next`` a request, ``revoke`` a token.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import ssl
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pyarrow as pa

from .fake_graph import FakeGraph

PROPERTY_LIMIT = 2_500_000
# the labels of minnie65_public's aibs_metamodel_celltypes_v661
CELL_TYPES = ("BC", "MC", "BPC", "NGC", "23P", "4P", "5P-IT", "6P-IT", "astrocyte")


def self_signed_certificate(directory: str) -> tuple[str, str]:
    """A certificate and key for 127.0.0.1, valid for a day, written to ``directory``."""
    import ipaddress
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file = os.path.join(directory, "fake-cave.pem")
    key_file = os.path.join(directory, "fake-cave-key.pem")
    with open(cert_file, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_file, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_file, key_file


def iso(t: float) -> str:
    """A time as the materialization engine writes it (naive ISO, UTC)."""
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")


def arrow_stream(df: pd.DataFrame) -> bytes:
    """A DataFrame as the engine sends it: one pyarrow IPC stream, zstd buffers."""
    batch = pa.RecordBatch.from_pandas(df, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema,
                           options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


@dataclass
class FakeTable:
    """An annotation table: rows keep supervoxels; root ids are looked up per version."""

    name: str
    schema: str
    rows: pd.DataFrame  # id, created (epoch s), <pt>_position_x/y/z, <pt>_supervoxel_id, ...
    voxel_resolution: tuple = (4.0, 4.0, 40.0)
    description: str = ""

    def points(self) -> list[str]:
        return [c[: -len("_supervoxel_id")] for c in self.rows.columns
                if c.endswith("_supervoxel_id")]

    def frame_at(self, graph: FakeGraph, t: float) -> pd.DataFrame:
        """Rows that existed at ``t`` with their root ids at ``t``, columns in engine order."""
        rows = self.rows[self.rows["created"].to_numpy() <= t]
        out = {"id": rows["id"].to_numpy(np.int64),
               "created": pd.to_datetime(rows["created"].to_numpy(), unit="s", utc=True),
               "valid": np.ones(len(rows), bool)}
        for pt in self.points():
            for axis in "xyz":
                out[f"{pt}_position_{axis}"] = rows[f"{pt}_position_{axis}"].to_numpy(np.int64)
        for col in rows.columns:
            if col in out or col.startswith(tuple(f"{p}_position_" for p in self.points())):
                continue
            if col.endswith("_supervoxel_id"):
                svs = rows[col].to_numpy(np.uint64)
                out[col] = svs.astype(np.int64)
                root_col = col[: -len("supervoxel_id")] + "root_id"
                out[root_col] = graph.get_roots(svs, t).astype(np.int64)
            elif col != "created":
                out[col] = rows[col].to_numpy()
        return pd.DataFrame(out)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)


def json_reply(obj, status: int = 200) -> Reply:
    return Reply(status, json.dumps(obj).encode())


def error(status: int, message: str) -> Reply:
    return json_reply({"error": message, "message": message}, status)


class FakeCave:
    """The fake deployment. ``base_url`` is both the global and the local server."""

    def __init__(self, datastack: str = "minnie65_public", *, n_cells: int = 40,
                 sv_per_cell: int = 20, token: str | None = None, start_time: float | None = None,
                 tls_dir: str | None = None):
        self.datastack = datastack
        self.token = token or secrets.token_hex(16)
        self.valid_tokens = {self.token}
        now = time.time()
        self.t0 = start_time if start_time is not None else now - 30 * 86400
        self.graph = FakeGraph(n_cells, sv_per_cell, self.t0)
        self.pcg_table = "minnie3_v1"
        self.tables: dict[str, FakeTable] = {}
        self.versions: dict[int, float] = {}
        self.states: dict[int, bytes] = {}
        self.properties: dict[int, bytes] = {}
        self.requests: list[tuple[str, str, bool]] = []  # (method, path, had a valid token)
        self.query_seconds: list[float] = []  # time to build each query's answer
        self._failures: list[tuple[str, int, str]] = []
        # {current root: outdated root} that roots_binary answers instead, as a lagging
        # cache would (what makes suggest_latest_roots return non-current ids)
        self.outdated_answers: dict[int, int] = {}
        self._lock = threading.Lock()
        self._next_state = 1
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        # HTTPS with a self-signed certificate (``cert_file``) when given a directory:
        # Neuroglancer reads middleauth sources over https only, as real CAVE serves them.
        self.tls_dir = tls_dir
        self.cert_file: str | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeCave:
        handler = type("Handler", (_Handler,), {"cave": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        scheme = "http"
        if self.tls_dir is not None:
            self.cert_file, key_file = self_signed_certificate(self.tls_dir)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.cert_file, key_file)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.base_url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True,
                                        name="fake-cave")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- changing the deployment ---------------------------------------------------------

    def add_table(self, table: FakeTable) -> None:
        self.tables[table.name] = table

    def materialize(self, at: float | None = None) -> int:
        """Freeze a new materialization version at ``at`` (now by default)."""
        with self._lock:
            version = max(self.versions, default=0) + 1
            self.versions[version] = time.time() if at is None else at
            return version

    def add_rows(self, table: str, rows: pd.DataFrame, at: float | None = None) -> None:
        """Append rows (ids continue the table's; ``created`` set to ``at``/now)."""
        t = self.tables[table]
        rows = rows.copy()
        start = int(t.rows["id"].max()) + 1 if len(t.rows) else 1
        rows["id"] = np.arange(start, start + len(rows))
        rows["created"] = time.time() if at is None else at
        t.rows = pd.concat([t.rows, rows[t.rows.columns]], ignore_index=True)

    def split(self, root: int, keep_fraction: float = 0.75, at: float | None = None):
        return self.graph.split(root, keep_fraction, time.time() if at is None else at)

    def merge(self, roots, at: float | None = None):
        return self.graph.merge(list(roots), time.time() if at is None else at)

    def fail_next(self, path_contains: str, status: int = 500,
                  message: str = "internal server error") -> None:
        """The next request whose path contains ``path_contains`` gets ``status``."""
        self._failures.append((path_contains, status, message))

    def revoke(self, token: str | None = None) -> None:
        self.valid_tokens.discard(token or self.token)

    def count(self, path_contains: str = "") -> int:
        """How many requests were made to paths containing ``path_contains``."""
        return sum(1 for _, p, _ in self.requests if path_contains in p)

    def counts(self) -> Counter:
        return Counter(re.sub(r"/\d{6,}", "/{id}", p) for _, p, _ in self.requests)

    def state(self, state_id: int) -> dict:
        return json.loads(self.states[state_id])

    def property_json(self, prop_id: int) -> dict:
        return json.loads(self.properties[prop_id])

    # -- the info service ------------------------------------------------------------------

    def info(self) -> dict:
        base = self.base_url
        return {
            "datastack": self.datastack,
            "viewer_site": "https://spelunker.cave-explorer.org",
            "aligned_volume": {"name": "minnie65_phase3", "id": 1,
                               "image_source": f"precomputed://{base}/image/em",
                               "description": "fake EM"},
            "synapse_table": "synapses_pni_2",
            "soma_table": "nucleus_detection_v0",
            "description": "A fake datastack served by nglive's tests.",
            "local_server": base,
            "segmentation_source": f"graphene://{base}/segmentation/table/{self.pcg_table}",
            "skeleton_source": (f"precomputed://middleauth+{base}/skeletoncache/api/v1/"
                                f"{self.datastack}/precomputed/skeleton"),
            "analysis_database": None,
            "viewer_resolution_x": 4.0,
            "viewer_resolution_y": 4.0,
            "viewer_resolution_z": 40.0,
        }

    def graphene_info(self) -> dict:
        return {
            "@type": "neuroglancer_multiscale_volume",
            "type": "segmentation",
            "data_type": "uint64",
            "num_channels": 1,
            "data_dir": f"{self.base_url}/ws",
            "app": {"supported_api_versions": [0, 1]},
            "graph": {"chunk_size": [256, 256, 512], "n_layers": 6, "n_bits_for_layer_id": 8},
            "scales": [{
                "key": "8_8_40", "resolution": [8, 8, 40], "size": [8192, 8192, 1024],
                "voxel_offset": [0, 0, 0], "chunk_sizes": [[256, 256, 32]],
                "encoding": "compressed_segmentation",
                "compressed_segmentation_block_size": [8, 8, 8],
            }],
        }

    # -- request handling -----------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict, headers, body: bytes) -> Reply:
        authed = self._token_ok(headers)
        with self._lock:
            self.requests.append((method, path, authed))
            for i, (needle, status, message) in enumerate(self._failures):
                if needle in path:
                    del self._failures[i]
                    return error(status, message)
        for route_method, pattern, public, name in _ROUTES:
            if route_method != method:
                continue
            m = pattern.fullmatch(path)
            if m is None:
                continue
            if not public and not authed:
                if _bearer(headers) is None:
                    # no token: the auth proxy sends browsers and scripts to its login page
                    return Reply(302, b"", "text/plain",
                                 {"Location": f"{self.base_url}/sticky_auth/api/v1/authorize"})
                return error(401, "invalid token")
            try:
                return getattr(self, name)(query=query, body=body, **m.groupdict())
            except KeyError as e:
                return error(404, f"not found: {e}")
        return error(404, f"no route for {method} {path}")

    def _token_ok(self, headers) -> bool:
        return _bearer(headers) in self.valid_tokens

    def _check_datastack(self, ds: str) -> None:
        if ds != self.datastack:
            raise KeyError(f"datastack {ds!r}")

    # info
    def r_info_version(self, **_):
        return json_reply("4.4.0")

    def r_login(self, **_):
        return Reply(200, b"<html>CAVE login</html>", "text/html")

    def r_datastacks(self, **_):
        return json_reply([self.datastack])

    def r_datastack_info(self, ds, **_):
        if ds != self.datastack:
            return error(404, f"datastack {ds} not found")
        return json_reply(self.info())

    # materialization
    def r_mat_api_versions(self, **_):
        return json_reply([2, 3])

    def r_mat_version(self, **_):
        return json_reply("5.14.0")

    def r_versions(self, ds, **_):
        self._check_datastack(ds)
        return json_reply(sorted(self.versions))

    def _version_meta(self, v: int) -> dict:
        return {"version": v, "id": v, "datastack": self.datastack, "valid": True,
                "time_stamp": iso(self.versions[v]), "expires_on": iso(time.time() + 9e6),
                "status": "AVAILABLE", "is_merged": True}

    def r_version_meta(self, ds, v, **_):
        self._check_datastack(ds)
        if int(v) not in self.versions:
            return error(404, f"version {v} not found")
        return json_reply(self._version_meta(int(v)))

    def r_versions_meta(self, ds, **_):
        self._check_datastack(ds)
        return json_reply([self._version_meta(v) for v in sorted(self.versions)])

    def r_tables(self, ds, v, **_):
        self._check_datastack(ds)
        return json_reply(sorted(self.tables))

    def r_table_meta(self, ds, v, table, **_):
        self._check_datastack(ds)
        t = self.tables.get(table)
        if t is None:
            return error(404, f"table {table} not found in version {v}")
        return json_reply({
            "table_name": t.name, "aligned_volume": "minnie65_phase3", "schema": t.schema,
            "schema_type": t.schema, "valid": True, "created": iso(self.t0),
            "description": t.description, "reference_table": "", "user_id": "1",
            "flat_segmentation_source": "",
            "voxel_resolution_x": t.voxel_resolution[0],
            "voxel_resolution_y": t.voxel_resolution[1],
            "voxel_resolution_z": t.voxel_resolution[2],
        })

    def r_query(self, ds, v, table, body, **_):
        self._check_datastack(ds)
        if int(v) not in self.versions:
            return error(404, f"version {v} not found")
        t = self.tables.get(table)
        if t is None:
            return error(404, f"table {table} not found in version {v}")
        spec = json.loads(body or b"{}")
        started = time.perf_counter()
        df = t.frame_at(self.graph, self.versions[int(v)])
        try:
            df = _apply_filters(df, spec, table)
        except ValueError as e:
            return error(400, str(e))
        headers = {}
        res = spec.get("desired_resolution")
        if res is not None:
            scale = np.asarray(t.voxel_resolution, float) / np.asarray(res, float)
            for col in [c for c in df.columns if "_position_" in c]:
                df[col] = df[col].to_numpy(np.float64) * scale["xyz".index(col[-1])]
            headers["dataframe_resolution"] = ", ".join(str(float(r)) for r in res)
        reply = Reply(200, arrow_stream(df), "data.arrow", headers)
        self.query_seconds.append(time.perf_counter() - started)
        return reply

    # chunkedgraph
    def r_cg_api_versions(self, **_):
        return json_reply([0, 1])

    def r_cg_version(self, **_):
        return json_reply("2.18.0")

    def r_graphene_info(self, table, **_):
        if table != self.pcg_table:
            return error(404, f"graph table {table} not found")
        return json_reply(self.graphene_info())

    def r_skeleton_info(self, ds, **_):
        self._check_datastack(ds)
        return json_reply({"@type": "neuroglancer_skeletons",
                           "transform": [8, 0, 0, 0, 0, 8, 0, 0, 0, 0, 40, 0],
                           "vertex_attributes": []})

    def r_is_latest(self, table, query, body, **_):
        ids = np.array(json.loads(body)["node_ids"], np.uint64)
        return json_reply({"is_latest": self.graph.is_latest(ids, _time(query)).tolist()})

    def r_roots_binary(self, table, query, body, **_):
        svs = np.frombuffer(body, np.uint64)
        roots = self.graph.get_roots(svs, _time(query))
        for now, before in self.outdated_answers.items():
            roots[roots == np.uint64(now)] = np.uint64(before)
        return Reply(200, roots.tobytes(), "application/octet-stream")

    def r_leaves(self, table, root, **_):
        leaves = self.graph.leaves(int(root))
        if leaves is None:
            return error(400, f"{root} is not a valid node id")
        return json_reply({"leaf_ids": leaves.astype(np.int64).tolist()})

    def r_leaves_many(self, table, body, **_):
        out = {}
        for rid in json.loads(body)["node_ids"]:
            leaves = self.graph.leaves(int(rid))  # an unknown id has no leaves
            out[str(rid)] = [] if leaves is None else leaves.astype(np.int64).tolist()
        return json_reply(out)

    def r_root_timestamps(self, table, body, **_):
        ids = np.array(json.loads(body)["node_ids"], np.uint64)
        return json_reply({"timestamp": self.graph.created(ids).tolist()})

    def r_lineage(self, table, query, body, **_):
        roots = json.loads(body)["root_ids"]
        return json_reply(self.graph.lineage(roots, _time(query, "timestamp_past"),
                                             _time(query, "timestamp_future")))

    def r_past_ids(self, table, query, body, **_):
        roots = json.loads(body)["root_ids"]
        past, future = self.graph.past_ids(roots, _time(query, "timestamp_past"))
        return json_reply({"past_id_map": past, "future_id_map": future})

    # state server
    def r_state_version(self, **_):
        return json_reply("0.4.1")

    def _store(self, into: dict, body: bytes, kind: str) -> Reply:
        json.loads(body)  # must be JSON
        with self._lock:
            sid = self._next_state
            self._next_state += 1
            into[sid] = body
        return json_reply(f"{self.base_url}/nglstate/api/v1/{kind}{sid}")

    def r_post_state(self, body, **_):
        return self._store(self.states, body, "")

    def r_post_property(self, body, **_):
        if len(body) > PROPERTY_LIMIT:
            return error(413, f"property JSON of {len(body)} bytes is over the "
                              f"{PROPERTY_LIMIT} byte limit")
        return self._store(self.properties, body, "property/")

    def r_get_state(self, sid, **_):
        if int(sid) not in self.states:
            return error(404, f"state {sid} not found")
        return Reply(200, self.states[int(sid)])

    def r_get_property(self, sid, **_):
        if int(sid) not in self.properties:
            return error(404, f"property {sid} not found")
        return Reply(200, self.properties[int(sid)])


def _bearer(headers) -> str | None:
    auth = headers.get("Authorization") or ""
    if auth.lower().startswith("bearer "):
        return auth.split(" ", 1)[1].strip()
    cookies = headers.get("Cookie") or ""
    m = re.search(r"middle_auth_token=([^;]+)", cookies)
    return m.group(1) if m else None


def _time(query: dict, name: str = "timestamp") -> float | None:
    value = query.get(name)
    return None if value is None else float(value[0])


def _apply_filters(df: pd.DataFrame, spec: dict, table: str) -> pd.DataFrame:
    """The engine's filters, offset, limit and column selection, on one table."""

    def column(col):
        if col not in df.columns and f"{col}_x" not in df.columns:
            raise ValueError(f"column {col} not found in table {table}")
        return col

    keep = np.ones(len(df), bool)
    for key, op in (("filter_in_dict", "in"), ("filter_notin_dict", "out"),
                    ("filter_equal_dict", "eq"), ("filter_greater_dict", "gt"),
                    ("filter_less_dict", "lt"), ("filter_greater_equal_dict", "ge"),
                    ("filter_less_equal_dict", "le")):
        for col, val in (spec.get(key) or {}).get(table, {}).items():
            values = df[column(col)].to_numpy()
            if op == "in":
                keep &= np.isin(values, np.asarray(val, dtype=values.dtype))
            elif op == "out":
                keep &= ~np.isin(values, np.asarray(val, dtype=values.dtype))
            else:
                keep &= {"eq": np.equal, "gt": np.greater, "lt": np.less,
                         "ge": np.greater_equal, "le": np.less_equal}[op](values, val)
    for col, box in (spec.get("filter_spatial_dict") or {}).get(table, {}).items():
        column(col)
        lo, hi = np.asarray(box, float)
        for i, axis in enumerate("xyz"):
            v = df[f"{col}_{axis}"].to_numpy()
            keep &= (v >= lo[i]) & (v < hi[i])
    df = df[keep].reset_index(drop=True)
    offset = spec.get("offset") or 0
    if offset or spec.get("limit"):
        df = df.iloc[offset: offset + spec["limit"] if spec.get("limit") else None]
    cols = spec.get("select_columns")
    if cols is None and spec.get("select_column_map"):
        cols = spec["select_column_map"].get(table)
    if cols:
        expanded = []
        for c in cols:
            column(c)
            expanded += [f"{c}_{a}" for a in "xyz"] if f"{c}_x" in df.columns else [c]
        df = df[expanded]
    return df.reset_index(drop=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real servers
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall between headers and body
    cave: FakeCave

    def log_message(self, *args):  # quiet
        pass

    def _cors(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "Authorization, Content-Type, Range")
        self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")

    def do_OPTIONS(self):  # noqa: N802 - http.server's naming
        self.send_response(204)
        self._cors()
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            reply = self.cave.handle(method, url.path, urllib.parse.parse_qs(url.query),
                                     self.headers, body)
        except Exception as e:  # noqa: BLE001 - a server answers 500, as the real one does
            reply = error(500, f"{type(e).__name__}: {e}")
        self.send_response(reply.status)
        self._cors()
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(reply.body)

    def do_GET(self):  # noqa: N802
        self._dispatch("GET")

    def do_POST(self):  # noqa: N802
        self._dispatch("POST")


_DS = r"(?P<ds>[^/]+)"
_V = r"(?P<v>\d+)"
_T = r"(?P<table>[^/]+)"
_MAT = "/materialize/api/v3/datastack/" + _DS
_CG = "/segmentation/api/v1/table/" + _T
_ROUTES = [(m, re.compile(p), public, name) for m, p, public, name in [
    ("GET", "/info/version", True, "r_info_version"),
    ("GET", "/sticky_auth/api/v1/authorize", True, "r_login"),
    ("GET", "/info/api/v2/datastacks", False, "r_datastacks"),
    ("GET", "/info/api/v2/datastack/full/" + _DS, False, "r_datastack_info"),
    ("GET", "/materialize/api/versions", True, "r_mat_api_versions"),
    ("GET", "/materialize/version", True, "r_mat_version"),
    ("GET", _MAT + "/versions", False, "r_versions"),
    ("GET", _MAT + "/metadata", False, "r_versions_meta"),
    ("GET", _MAT + "/version/" + _V, False, "r_version_meta"),
    ("GET", "/materialize/api/v2/datastack/" + _DS + "/version/" + _V + "/tables", False,
     "r_tables"),
    ("GET", _MAT + "/version/" + _V + "/table/" + _T + "/metadata", False, "r_table_meta"),
    ("POST", _MAT + "/version/" + _V + "/table/" + _T + "/query", False, "r_query"),
    ("GET", "/segmentation/api/versions", True, "r_cg_api_versions"),
    ("GET", "/segmentation/api/version", True, "r_cg_version"),
    ("GET", "/segmentation/table/" + _T + "/info", False, "r_graphene_info"),
    ("GET", "/skeletoncache/api/v1/" + _DS + "/precomputed/skeleton/info", False,
     "r_skeleton_info"),
    ("POST", _CG + "/is_latest_roots", False, "r_is_latest"),
    ("POST", _CG + "/roots_binary", False, "r_roots_binary"),
    ("GET", _CG + r"/node/(?P<root>\d+)/leaves", False, "r_leaves"),
    ("POST", _CG + "/node/leaves_many", False, "r_leaves_many"),
    ("POST", _CG + "/root_timestamps", False, "r_root_timestamps"),
    ("POST", _CG + "/lineage_graph_multiple", False, "r_lineage"),
    ("GET", _CG + "/past_id_mapping", False, "r_past_ids"),
    ("GET", "/nglstate/api/v1/version", True, "r_state_version"),
    ("POST", "/nglstate/api/v1/post", False, "r_post_state"),
    ("POST", "/nglstate/api/v1/property/post", False, "r_post_property"),
    ("GET", r"/nglstate/api/v1/property/(?P<sid>\d+)/info", False, "r_get_property"),
    ("GET", r"/nglstate/api/v1/(?P<sid>\d+)", False, "r_get_state"),
]]


# ----------------------------------------------------------------------------- synthetic data

def synapse_rows(graph: FakeGraph, n: int, rng: np.random.Generator, t: float) -> pd.DataFrame:
    """Synapses between random supervoxels, positions in 4x4x40 nm voxels."""
    pre = rng.integers(0, len(graph.sv_ids), n)
    post = rng.integers(0, len(graph.sv_ids), n)
    ctr = np.column_stack([rng.integers(20000, 60000, n), rng.integers(20000, 60000, n),
                           rng.integers(15000, 25000, n)])
    off = rng.integers(-40, 40, (n, 3)) * np.array([1, 1, 0])
    cols = {"id": np.arange(1, n + 1), "created": np.full(n, t)}
    for pt, xyz in (("pre_pt", ctr - off), ("ctr_pt", ctr), ("post_pt", ctr + off)):
        for i, a in enumerate("xyz"):
            cols[f"{pt}_position_{a}"] = xyz[:, i].astype(np.int64)
    cols["size"] = rng.integers(50, 5000, n)
    cols["pre_pt_supervoxel_id"] = graph.sv_ids[pre]
    cols["post_pt_supervoxel_id"] = graph.sv_ids[post]
    cols["pre_pt_supervoxel_id"][::97] = 0  # a few synapses on unsegmented tissue
    return pd.DataFrame(cols)


def cell_rows(graph: FakeGraph, rng: np.random.Generator, t: float,
              n: int) -> pd.DataFrame:
    """One cell-type row for each of the first ``n`` cells, at one of its supervoxels;
    cell types in turn (cell 0 a basket cell, 1 a Martinotti cell, ...)."""
    sv = np.arange(n) * graph.sv_per_cell
    cols = {"id": np.arange(1, n + 1), "created": np.full(n, t)}
    for a, (lo, hi) in zip("xyz", ((20000, 60000), (20000, 60000), (15000, 25000)),
                           strict=True):
        cols[f"pt_position_{a}"] = rng.integers(lo, hi, n).astype(np.int64)
    cols["pt_supervoxel_id"] = graph.sv_ids[sv]
    cols["cell_type"] = np.array(CELL_TYPES)[np.arange(n) % len(CELL_TYPES)]
    cols["classification_system"] = np.full(n, "aibs_neuronal")
    return pd.DataFrame(cols)


def synthetic(n_cells: int = 40, sv_per_cell: int = 20, n_synapses: int = 2000,
              seed: int = 0, n_fragments: int = 10, **keywords) -> FakeCave:
    """A deployment like minnie65_public: a synapse table, a cell-type table, version 1,
    then edits that make some of version 1's root ids stale.

    The last ``n_fragments`` roots are orphan fragments (synapses, no cell type). The
    edits (on ``cave.edits``): cell 0 split 80/20, cell 1 split 60/40, cell 2 merged
    with the last fragment.
    """
    cave = FakeCave(n_cells=n_cells, sv_per_cell=sv_per_cell, **keywords)
    rng = np.random.default_rng(seed)
    t0 = cave.t0
    cave.add_table(FakeTable("synapses_pni_2", "synapse",
                             synapse_rows(cave.graph, n_synapses, rng, t0),
                             description="fake synapses"))
    cave.add_table(FakeTable("aibs_metamodel_celltypes_v661", "cell_type_local",
                             cell_rows(cave.graph, rng, t0, n_cells - n_fragments),
                             description="fake cell types"))
    cave.materialize(at=t0 + 86400)
    g = cave.graph
    day = t0 + 2 * 86400
    split0 = g.split(g.cell_root(0), 0.8, day)
    split1 = g.split(g.cell_root(1), 0.6, day + 60)
    merged = g.merge([g.cell_root(2), g.cell_root(n_cells - 1)], day + 120)
    cave.edits = {"split0": split0, "split1": split1, "merged": merged}
    return cave
