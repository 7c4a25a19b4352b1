"""The durable outbox: what the agent must tell the proxy, written to disk before it is sent.

Layout under `<stateDir>/spool/`: one directory per job attempt, `<namespace>_<job>_<attempt>`,
holding `chunk-<seq>.json` (an output chunk) and `result.json` (the final status patch). Each
record is written to a temporary file, fsync'd, renamed into place and the directory fsync'd,
so after a crash a record is either whole or absent. A record is deleted only after the proxy
acknowledged it; whatever is left is delivered after a reconnect or a restart, chunks in `seq`
order and the result last. Re-delivery is safe: a chunk's name on the cluster is deterministic
(a re-send is stored once) and the result is a fenced patch (a second apply fails its `test`
and is dropped).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULT = "result.json"
_CHUNK_PREFIX = "chunk-"


@dataclass(frozen=True, order=True)
class AttemptKey:
    namespace: str
    job: str
    attempt: int

    @property
    def dirname(self) -> str:
        # Namespaces and job names are DNS names: they never contain '_'.
        return f"{self.namespace}_{self.job}_{self.attempt}"

    @classmethod
    def from_dirname(cls, name: str) -> AttemptKey | None:
        parts = name.split("_")
        if len(parts) != 3 or not parts[2].isdigit():
            return None
        return cls(parts[0], parts[1], int(parts[2]))


@dataclass(frozen=True)
class Record:
    key: AttemptKey
    path: Path
    body: dict[str, Any]

    @property
    def is_result(self) -> bool:
        return self.path.name == RESULT


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` so that after a crash the file is either old, new, or absent; never torn."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _dir(self, key: AttemptKey) -> Path:
        path = self.root / key.dirname
        if not path.exists():
            path.mkdir(mode=0o700)
            _fsync_dir(self.root)
        return path

    def put_chunk(self, key: AttemptKey, seq: int, body: dict[str, Any]) -> Path:
        path = self._dir(key) / f"{_CHUNK_PREFIX}{seq:08d}.json"
        write_atomic(path, json.dumps(body).encode())
        return path

    def put_result(self, key: AttemptKey, body: dict[str, Any]) -> Path:
        path = self._dir(key) / RESULT
        write_atomic(path, json.dumps(body).encode())
        return path

    def has_result(self, key: AttemptKey) -> bool:
        return (self.root / key.dirname / RESULT).exists()

    def attempts(self) -> list[AttemptKey]:
        keys = [AttemptKey.from_dirname(p.name) for p in self.root.iterdir() if p.is_dir()]
        return sorted(k for k in keys if k is not None)

    def records(self, key: AttemptKey) -> list[Record]:
        """The attempt's records in delivery order: chunks by seq, then the result."""
        directory = self.root / key.dirname
        if not directory.is_dir():
            return []
        chunks = sorted(p for p in directory.iterdir() if p.name.startswith(_CHUNK_PREFIX) and p.suffix == ".json")
        result = directory / RESULT
        paths = chunks + ([result] if result.exists() else [])
        records = []
        for path in paths:
            try:
                records.append(Record(key, path, json.loads(path.read_bytes())))
            except (OSError, ValueError):
                continue  # a record vanished (delivered meanwhile) or is unreadable; never torn
        return records

    def ack(self, record: Record) -> None:
        """The proxy has it (or it can never be delivered): forget it."""
        record.path.unlink(missing_ok=True)
        directory = record.path.parent
        if record.is_result:
            self.drop(record.key)
        elif directory.is_dir() and not any(directory.iterdir()):
            # Keep the directory while the attempt may still write; `drop` removes it.
            pass

    def drop(self, key: AttemptKey) -> None:
        """Forget everything of an attempt (delivered, or superseded and never to be delivered)."""
        shutil.rmtree(self.root / key.dirname, ignore_errors=True)

    def pending(self) -> int:
        return sum(len(self.records(k)) for k in self.attempts())
