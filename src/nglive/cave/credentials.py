"""The user's CAVE token for ``middleauth+`` sources in the embedded Neuroglancer client.

CAVE serves the graphene segmentation, skeletons and state-server property files behind
its auth proxy; Neuroglancer reads them from ``middleauth+https://…`` URLs (the form
Spelunker and nglui write). A standalone Neuroglancer logs in through a pop-up; the
client nglive embeds (the ``neuroglancer`` Python package's) asks its Python server for
every credential instead. Registering a ``middleauthapp`` provider there hands the
token caveclient already holds to the viewer, so the same ``middleauth+`` sources work
in the notebook, in Spelunker and in a shared link alike. The token goes only to the
viewer's own browser tab, through the kernel's server and its unguessable viewer token.
"""

from __future__ import annotations

import concurrent.futures
import threading
from urllib.parse import urlsplit

import neuroglancer.credentials_provider
import neuroglancer.default_credentials_manager

_tokens: dict[str, str] = {}
_lock = threading.Lock()
_registered = False


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, ignoring a ``middleauth+`` or data-source prefix.

    Examples
    --------
    >>> origin("graphene://middleauth+https://minnie.microns-daf.com/segmentation/table/x")
    'https://minnie.microns-daf.com'
    >>> origin("http://127.0.0.1:8000/nglstate/api/v1/3")
    'http://127.0.0.1:8000'
    """
    for prefix in ("graphene://", "precomputed://", "middleauth+"):
        if url.startswith(prefix):
            url = url[len(prefix):]
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class _TokenProvider(neuroglancer.credentials_provider.CredentialsProvider):
    """Neuroglancer's middleauth credentials (a bearer token) for one server origin."""

    def __init__(self, server: str):
        super().__init__()
        self.server = origin(server)

    def get_new(self):
        future: concurrent.futures.Future = concurrent.futures.Future()
        with _lock:
            token = _tokens.get(self.server)
        if token is None:
            future.set_exception(PermissionError(
                f"no CAVE token known for {self.server}: add a datastack or table from a "
                "caveclient client for this server first"))
        else:
            future.set_result({"tokenType": "Bearer", "accessToken": token,
                               "url": self.server, "appUrls": [self.server]})
        return future


def remember_token(client) -> None:
    """Let the embedded viewer use ``client``'s token for its servers' middleauth sources."""
    global _registered
    token = getattr(client.auth, "token", None)
    if not token:
        return
    servers = {client.server_address}
    local = getattr(client, "local_server", None)
    if local:
        servers.add(local)
    with _lock:
        for server in servers:
            _tokens[origin(server)] = token
        if not _registered:
            manager = neuroglancer.default_credentials_manager.default_credentials_manager
            # "middleauthapp" is what Neuroglancer asks for per data server;
            # "middleauth" is the login server itself (same token on CAVE).
            manager.register("middleauthapp", _TokenProvider)
            manager.register("middleauth", _TokenProvider)
            _registered = True
