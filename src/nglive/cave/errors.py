"""Errors of CAVE calls that say what was asked, what exists and what to do next.

caveclient raises ``requests.HTTPError`` (status, URL and raw body) or its own
``AuthException``; :func:`cave_call` turns them into the errors below, naming the call
that failed and, where the server can say, what exists instead.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from collections.abc import Callable, Iterator

INSTALL_HINT = "pip install 'nglive[cave]'"
TOKEN_HELP = ("set up a token as caveclient documents: CAVEclient.setup_token(server) "
              "once, or client.auth.save_token(token=...) "
              "(https://caveconnectome.github.io/CAVEclient/tutorials/authentication/)")


class CaveError(RuntimeError):
    """A CAVE call failed; the message names the call and the server's answer."""


class CaveNotFoundError(CaveError, LookupError):
    """A datastack, table or state that does not exist; the message lists what does."""


class CaveAuthError(CaveError, PermissionError):
    """The server wants a (valid) token, or the token lacks permission."""


class CaveServerError(CaveError):
    """The server answered with an error (or could not be reached)."""


class PropertySizeError(CaveError, ValueError):
    """Segment properties too large for the state server."""


class NeedsBucketError(CaveError):
    """``share`` found layers that only a bucket can carry and no ``publish_to``."""


def require_caveclient():
    """The ``caveclient`` module, or an ImportError that says how to install it.

    Examples
    --------
    >>> require_caveclient().__name__
    'caveclient'
    """
    try:
        return importlib.import_module("caveclient")
    except ImportError as e:
        raise ImportError(
            f"nglive's CAVE features need caveclient; install them with {INSTALL_HINT}"
        ) from e


def server_message(response) -> str:
    """The human part of an error response: its JSON ``message``/``error``, or its text.

    Examples
    --------
    >>> class R: content = b'{"message": "table x not found"}'
    >>> server_message(R())
    'table x not found'
    """
    body = getattr(response, "content", b"") or b""
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        return text.strip()[:300]
    if isinstance(data, dict):
        for key in ("message", "error", "detail"):
            if data.get(key):
                return str(data[key])
    return str(data)[:300]


def _listing(available: Callable[[], list] | None) -> str:
    if available is None:
        return ""
    try:
        items = sorted(map(str, available()))
    except Exception:  # noqa: BLE001 - the listing is a courtesy; the error still stands
        return ""
    shown = ", ".join(repr(i) for i in items[:30])
    more = f" and {len(items) - 30} more" if len(items) > 30 else ""
    return f"; available: {shown}{more}" if items else "; none available"


@contextlib.contextmanager
def cave_call(what: str, *, server: str | None = None,
              available: Callable[[], list] | None = None) -> Iterator[None]:
    """Translate caveclient's errors raised inside the block.

    Parameters
    ----------
    what : str
        The call in the user's words, e.g. ``"query of table 'synapses' (version 3)"``.
    server : str, optional
        The server asked (for auth and connection errors).
    available : callable, optional
        Lists what exists (tables, datastacks) for a not-found error.

    Examples
    --------
    >>> with cave_call("a query"):
    ...     pass
    """
    require_caveclient()
    requests = importlib.import_module("requests")
    auth_exception = importlib.import_module("caveclient.base").AuthException
    where = f" at {server}" if server else ""
    try:
        yield
    except requests.HTTPError as e:
        response = e.response
        status = getattr(response, "status_code", None)
        message = server_message(response)
        if status in (401, 403):
            why = ("the token was not accepted" if status == 401
                   else "the token lacks permission (accepted the datastack's terms?)")
            raise CaveAuthError(f"{what}{where}: {why} ({status}: {message}); {TOKEN_HELP}"
                                ) from e
        if status == 404:
            raise CaveNotFoundError(f"{what}{where}: not found ({message})"
                                    f"{_listing(available)}") from e
        raise CaveServerError(f"{what}{where}: the server answered {status} ({message})"
                              ) from e
    except requests.ConnectionError as e:
        raise CaveServerError(f"{what}: cannot reach the CAVE server{where} ({e})") from e
    except Exception as e:
        if isinstance(e, auth_exception):
            raise CaveAuthError(f"{what}{where}: no valid token for this server; "
                                f"{TOKEN_HELP}") from e
        raise
