"""The error every publishing failure is reported as."""

from __future__ import annotations


class PublishError(RuntimeError):
    """Publishing could not start or finish.

    Raised before anything is written when the destination, the credentials or the
    public URL are wrong; raised after a failed write with the previous publication
    still intact (nothing it reads was overwritten).
    """
