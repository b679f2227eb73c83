"""Publishing: the live viewer's sources to a directory or bucket, and a link to them.

``publish_store(viewer_or_store, dest, ...)`` (``Viewer.publish``) copies the current
generation of every bound source, incrementally and safely; ``Published`` holds the
Neuroglancer state that shows the publication without the kernel.
"""

from .destination import Destination, open_destination
from .errors import PublishError
from .publisher import publish_store
from .state import DEFAULT_SITE, Published

__all__ = ["DEFAULT_SITE", "Destination", "PublishError", "Published", "open_destination",
           "publish_store"]
