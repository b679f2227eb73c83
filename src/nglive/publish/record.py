"""The publication record kept at the destination: what nglive wrote there, and when
each version was retired, so a re-publish writes only what changed and deletes only
what nglive itself put there."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from .errors import PublishError

RECORD_KEY = "nglive-publication.json"
FORMAT = 1


@dataclass
class Retired:
    """Files a source no longer uses, kept readable until ``since + retain``."""

    since: float
    files: dict[str, str]  # key -> digest


@dataclass
class SourceRecord:
    """One published source: its current files and its retired versions."""

    current: dict[str, str] = field(default_factory=dict)
    retired: list[Retired] = field(default_factory=list)


@dataclass
class PublicationRecord:
    """Everything nglive wrote to one destination (keys relative to its root)."""

    sources: dict[str, SourceRecord] = field(default_factory=dict)
    # keys of an attempt that did not finish: retired at the next publish
    pending: dict[str, str] = field(default_factory=dict)
    state_digest: str | None = None

    def known(self) -> dict[str, str]:
        """Every key nglive finished writing and has not deleted, with its digest
        (``pending`` keys may be missing or partial: they are written again)."""
        out: dict[str, str] = {}
        for rec in self.sources.values():
            for old in rec.retired:
                out.update(old.files)
            out.update(rec.current)
        return out

    def to_bytes(self) -> bytes:
        doc = {
            "nglive_publication": FORMAT,
            "updated": time.time(),
            "sources": {
                name: {"current": rec.current,
                       "retired": [{"since": r.since, "files": r.files} for r in rec.retired]}
                for name, rec in sorted(self.sources.items())
            },
            "pending": self.pending,
            "state_digest": self.state_digest,
        }
        return json.dumps(doc, indent=1, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes | None, where: str) -> PublicationRecord:
        if data is None:
            return cls()
        try:
            doc = json.loads(data)
            if doc.get("nglive_publication") != FORMAT:
                raise ValueError(f"unknown record format {doc.get('nglive_publication')!r}")
            sources = {
                name: SourceRecord(
                    current=dict(rec["current"]),
                    retired=[Retired(float(r["since"]), dict(r["files"]))
                             for r in rec.get("retired", [])])
                for name, rec in doc["sources"].items()
            }
            return cls(sources, dict(doc.get("pending", {})), doc.get("state_digest"))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise PublishError(
                f"{where}/{RECORD_KEY} is not a publication record nglive can read ({e}); "
                "publish to an empty location, or delete that file if you know nothing "
                "else was published there") from e
