"""One writer per run folder, and overwrites that lose nothing.

A run takes ``<out>/.lock`` atomically (``O_CREAT | O_EXCL``) before it writes anything and holds it for its
whole life; the file names the holder (pid, host, start time). A second run on the same folder fails at once
and names the holder. A lock whose process is gone (same host, pid not alive) is stale and is taken over.

``--overwrite`` never deletes first: the new run trains into a hidden sibling folder ``.<name>.new-<pid>``
and replaces the old record only when it has finished (two renames), so a killed or failed overwrite
leaves the earlier record as it was.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

from gradlab.errors import RunFolderError, RunFolderInUse
from gradlab.files import write_error

LOCK_NAME = ".lock"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # exists, owned by someone else
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True                  # no /proc (macOS): trust kill(0)
    return state not in ("Z", "X")


def lock_holder(folder: str | os.PathLike) -> dict | None:
    """The lock's content ({pid, host, started}) while a live process holds ``folder``; None otherwise.
    A lock of a dead process on this host is reported as ``{"stale": True, ...}``."""
    path = Path(folder) / LOCK_NAME
    try:
        holder = json.loads(path.read_text())
        holder = holder if isinstance(holder, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        holder = {}                  # half-written by a killed process: treat as stale below
    pid, host = holder.get("pid"), holder.get("host")
    if not isinstance(pid, int) or host == socket.gethostname() and not _alive(pid):
        return {**holder, "stale": True}
    return holder


def describe_holder(holder: dict) -> str:
    started = holder.get("started")
    when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else ""
    return f"pid {holder.get('pid')} on host {holder.get('host')!r}{when}"


def holds_files(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds anything besides its lock."""
    folder = Path(folder)
    return folder.is_dir() and any(p.name != LOCK_NAME for p in folder.iterdir())


def refuse_if_in_use(folder: str | os.PathLike, who: str = "out", hint: str = "") -> None:
    """Raise :class:`RunFolderInUse` while a live gradlab run holds ``folder``'s lock (a stale lock is free)."""
    holder = lock_holder(folder) if Path(folder).is_dir() else None
    if holder is not None and not holder.get("stale"):
        raise RunFolderInUse(f"{who}: {str(folder)!r} is in use by another gradlab run ({describe_holder(holder)}); "
                             f"wait for it to finish or choose another folder{hint}")


def refuse_if_taken(out: Path, overwrite: bool) -> None:
    """A new run needs ``out`` free (nothing but a lock in it) unless it overwrites; the error says what is there
    and which flag keeps or replaces it."""
    if overwrite or not holds_files(out):
        return
    if (out / "summary.json").is_file():
        raise RunFolderError(f"out: {str(out)!r} already holds a finished run; pass --overwrite (overwrite=True) "
                             "to replace it, or --resume (resume=True) to keep it")
    if (out / "config.yaml").is_file():
        raise RunFolderError(f"out: {str(out)!r} already holds files of an unfinished run; pass --resume "
                             "(resume=True) to continue it or --overwrite (overwrite=True) to start again")
    raise RunFolderError(f"out: {str(out)!r} already holds files; choose another folder or pass --overwrite "
                         "(overwrite=True)")


class RunLock:
    """The exclusive lock of one run folder (a context manager)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.held = False

    def acquire(self) -> "RunLock":
        content = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = lock_holder(self.folder)
                if holder is not None and holder.get("stale"):
                    self.path.unlink(missing_ok=True)      # its process is gone: take it over
                    continue
                if holder is None:                          # released between our two looks
                    continue
                refuse_if_in_use(self.folder, hint=f" (if that run is gone, delete {str(self.path)!r})")
                continue                                    # gone stale or released since the first look
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(content)
            except OSError as err:
                self.path.unlink(missing_ok=True)
                raise write_error(self.path, err) from err
            self.held = True
            return self
        raise RunFolderError(f"out: could not take the lock {str(self.path)!r}; try again")

    def release(self) -> None:
        if self.held:
            holder = lock_holder(self.folder)
            if holder is not None and holder.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class RunFolder:
    """Where a run writes: ``out`` itself, or (overwrite of an existing record) a hidden sibling folder that
    replaces ``out`` when the run completes. Use as ``folder = RunFolder(out, overwrite).open()``, train into
    ``folder.train_dir``, then ``folder.commit()`` on success or ``folder.abandon()`` on failure."""

    def __init__(self, out: str | os.PathLike, overwrite: bool, resume: bool = False):
        self.out, self.overwrite, self.resume = Path(out), overwrite, resume
        self.train_dir = self.out
        self.lock = RunLock(self.out)

    def open(self) -> "RunFolder":
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_error(err.filename or self.out, err) from err
        self.lock.acquire()
        try:
            if holds_files(self.out) and not self.resume:
                refuse_if_taken(self.out, self.overwrite)
                for old in self.out.parent.glob(f".{self.out.name}.new-*"):   # left by killed overwrites
                    shutil.rmtree(old, ignore_errors=True)
                self.train_dir = self.out.parent / f".{self.out.name}.new-{os.getpid()}"
                try:
                    self.train_dir.mkdir()
                except OSError as err:
                    self.train_dir = self.out
                    raise write_error(self.out.parent / f".{self.out.name}.new-{os.getpid()}", err) from err
        except BaseException:
            self.lock.release()
            raise
        return self

    def commit(self) -> None:
        """The run finished: its folder becomes ``out`` (the old record goes only now); the lock is released."""
        try:
            if self.train_dir != self.out:
                old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
                try:
                    os.replace(self.out, old)
                except OSError as err:
                    raise write_error(self.out, err) from err
                try:
                    os.replace(self.train_dir, self.out)
                except OSError as err:
                    os.replace(old, self.out)                # the earlier record back in place
                    raise write_error(self.out, err) from err
                self.lock.held = False                       # the lock file went with the old folder
                shutil.rmtree(old, ignore_errors=True)
        finally:
            self.lock.release()

    def abandon(self) -> None:
        """The run failed or was interrupted: an overwrite's new folder goes, the old record stays."""
        try:
            if self.train_dir != self.out:
                shutil.rmtree(self.train_dir, ignore_errors=True)
        finally:
            self.lock.release()
