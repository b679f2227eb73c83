"""A caveclient client for a datastack, with errors that say what exists and what to do."""

from __future__ import annotations

from .errors import cave_call, require_caveclient


def connect(datastack: str, server_address: str | None = None, *,
            auth_token: str | None = None, **client_keywords):
    """``caveclient.CAVEclient(datastack, ...)``, failing with errors that help.

    An unknown datastack lists the datastacks the server has; a missing or rejected
    token says how to set one up. Everything else is caveclient's own client.

    Parameters
    ----------
    datastack : str
        E.g. ``"minnie65_public"``.
    server_address : str, optional
        The global CAVE server; caveclient's default (its cache, then
        ``https://global.daf-apis.com``) otherwise.
    auth_token : str, optional
        A token; by default the one caveclient saved (``client.auth.save_token``).
    **client_keywords
        Passed to ``CAVEclient`` (``version=``, ``desired_resolution=``, ...).

    Examples
    --------
    >>> client = connect("minnie65_public")  # doctest: +SKIP
    """
    caveclient = require_caveclient()
    server = server_address
    if server is None:
        from caveclient.datastack_lookup import handle_server_address
        from caveclient.endpoints import default_global_server_address

        server = handle_server_address(datastack, None) or default_global_server_address

    def available():
        glob = caveclient.CAVEclient(server_address=server, auth_token=auth_token)
        return glob.info.get_datastacks()

    with cave_call(f"datastack {datastack!r}", server=server, available=available):
        return caveclient.CAVEclient(datastack, server_address=server_address,
                                     auth_token=auth_token, **client_keywords)
