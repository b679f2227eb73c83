"""The ``nglive`` command line: ``nglive demo`` serves the synthetic dataset; ``nglive serve
DIR`` serves a published directory."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import webbrowser


def run_demo(args: argparse.Namespace) -> int:
    import neuroglancer

    from .demo_data import demo_meshes, demo_table
    from .widget import Viewer

    if args.bind_address != "127.0.0.1":
        print(f"warning: serving on {args.bind_address}; anyone who can reach it and knows "
              "the URL can read the data", file=sys.stderr)
    neuroglancer.set_server_bind_address(args.bind_address, args.port)
    viewer = Viewer(log_requests=args.log_requests)
    if args.log_requests:
        viewer.server.on_request = lambda r: print(
            f"{r.status} {r.method} {r.key} {r.range or ''}", file=sys.stderr, flush=True)
    meshes = demo_meshes()
    table = demo_table(meshes)
    viewer.add_meshes("demo shapes", meshes, table, label_col="name",
                      tag_value_cols=["cell_type"], tag_bool_cols=["proofread"],
                      number_cols=["volume_um3", "area_um2", "n_faces"])
    with viewer.txn() as s:
        s.layout = "3d"
        s.selected_layer.layer = "demo shapes"
        s.selected_layer.visible = True
    print("nglive demo: a Neuroglancer viewer of six synthetic meshes with segment properties.")
    print("Open this URL (Ctrl-C to stop):", flush=True)
    print(viewer.url, flush=True)
    if not args.no_browser:
        webbrowser.open(viewer.url)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("stopped")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from .static_server import StaticServer

    if args.bind_address not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving {args.directory} on {args.bind_address}; anyone who can "
              "reach it can read it", file=sys.stderr)
    log = None
    if args.log_requests:
        def log(r):
            print(f"{r.status} {r.method} {r.path} {r.range or ''}", file=sys.stderr,
                  flush=True)
    try:
        server = StaticServer(args.directory, port=args.port, bind_address=args.bind_address,
                              on_request=log)
    except (FileNotFoundError, OSError) as e:
        print(f"nglive serve: {e}", file=sys.stderr)
        return 1
    print(f"nglive serve: {server.root} with CORS and byte ranges (Ctrl-C to stop)")
    print(server.url, flush=True)
    if os.path.exists(os.path.join(server.root, "state.json")):
        print(f"state: {server.url}/state.json  (Neuroglancer: <site>/#!{server.url}/state.json)",
              flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nglive", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="serve a viewer of the embedded synthetic dataset")
    demo.add_argument("--no-browser", action="store_true", help="do not open a browser")
    demo.add_argument("--port", type=int, default=0, help="port to serve on (default: any free)")
    demo.add_argument("--bind-address", default="127.0.0.1",
                      help="address to bind (default: loopback only)")
    demo.add_argument("--log-requests", action="store_true",
                      help="print every data request to stderr")
    serve = sub.add_parser("serve", help="serve a published directory (CORS, byte ranges)")
    serve.add_argument("directory", help="the directory viewer.publish() wrote")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any)")
    serve.add_argument("--bind-address", default="127.0.0.1",
                       help="address to bind (default: loopback only)")
    serve.add_argument("--log-requests", action="store_true",
                       help="print every request to stderr")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo(args)
    if args.command == "serve":
        return run_serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
