"""Saving and loading the trainer's state (weights, optimizer, scalers, version): GridFS or a directory.

A checkpoint is the :meth:`Forecaster.state` dict written with ``torch.save`` and read back with
``weights_only=True`` (plain types and tensors only: a tampered file cannot run code on load). Writes are
replace-after-complete: a crash mid-write leaves the previous checkpoint readable.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, Protocol

import gridfs
import torch
from pymongo.database import Database

from shared.settings import Settings

logger = logging.getLogger(__name__)

GRIDFS_BUCKET = "checkpoints"


def checkpoint_name(settings: Settings) -> str:
    """One checkpoint per consumer group, mode and target; members of a group share the global model's
    lineage (per-ticker scalers are keyed by ticker, so a member restarting on other partitions still
    resumes, fitting scalers only for tickers it has never seen)."""
    return f"trainer-{settings.trainer.group_id}-{settings.trainer.mode}-{settings.trainer.target}"


def to_bytes(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(io.BytesIO(data), weights_only=True)
    return state


class CheckpointStore(Protocol):
    def save(self, name: str, state: dict[str, Any]) -> None: ...

    def load(self, name: str) -> dict[str, Any] | None: ...


class DirectoryStore:
    """``<dir>/<name>.pt`` on a volume."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, name: str, state: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{name}.pt"
        tmp = path.with_suffix(".pt.tmp")
        tmp.write_bytes(to_bytes(state))
        tmp.replace(path)

    def load(self, name: str) -> dict[str, Any] | None:
        path = self.directory / f"{name}.pt"
        if not path.is_file():
            return None
        return from_bytes(path.read_bytes())


class GridFSStore:
    """Files named ``<name>`` in the ``checkpoints`` GridFS bucket; older versions removed after a save."""

    def __init__(self, db: Database[dict[str, Any]]) -> None:
        self.fs = gridfs.GridFS(db, collection=GRIDFS_BUCKET)

    def save(self, name: str, state: dict[str, Any]) -> None:
        new_id = self.fs.put(to_bytes(state), filename=name)
        for old in self.fs.find({"filename": name, "_id": {"$ne": new_id}}):
            self.fs.delete(old._id)

    def load(self, name: str) -> dict[str, Any] | None:
        try:
            return from_bytes(self.fs.get_last_version(filename=name).read())
        except gridfs.errors.NoFile:
            return None


def make_store(settings: Settings, db: Database[dict[str, Any]]) -> CheckpointStore:
    if settings.trainer.checkpoint_store == "volume":
        return DirectoryStore(settings.trainer.checkpoint_dir)
    return GridFSStore(db)
