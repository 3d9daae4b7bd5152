"""Writing files so that nothing looks finished before it is: atomic writes and strict JSON (a leaf module).

Every file of a run record, a figure or a table is written to a temporary file in the same folder and then
renamed over its path, so a kill or a full disk never leaves half a file; a failed write raises
:class:`~gradlab.errors.WriteError` naming the path (and, for a full disk, the space left there).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from gradlab.errors import WriteError

_UMASK = os.umask(0)
os.umask(_UMASK)


def size_text(n: float) -> str:
    """A byte count in words: ``512 bytes``, ``3.4 MiB``."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024


def write_error(path: str | os.PathLike, err: OSError) -> WriteError:
    """``err`` as a :class:`WriteError` naming ``path``; a full disk or quota also says the space left there."""
    if isinstance(err, WriteError):
        return err
    code = err.errno if isinstance(err.errno, int) else errno.EIO
    text = os.strerror(code) if code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO) else (err.strerror or str(err))
    if code in (errno.ENOSPC, errno.EDQUOT):
        try:
            folder = next(p for p in Path(path).absolute().parents if p.exists())
            text += f" ({size_text(shutil.disk_usage(folder).free)} free there)"
        except (OSError, StopIteration):
            pass
    return WriteError(code, text, str(path))


def atomic_write(path: Path, write) -> None:
    """Write via ``write(tmp_path)`` to a temp file in the same folder, then rename over ``path``. A failed
    write (full disk, read-only, I/O error) raises :class:`~gradlab.errors.WriteError` naming ``path``."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as err:
        raise write_error(path, err) from err
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(path, err) from err
    except BaseException as err:
        try:                             # torch.save reports a full disk as a RuntimeError
            full = isinstance(err, RuntimeError) and shutil.disk_usage(path.parent).free < 2**20
        except OSError:
            full = False
        Path(tmp).unlink(missing_ok=True)
        if full:
            raise write_error(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))) from err
        raise


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_parquet(path: Path, frame) -> None:
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def plain(value):
    """JSON fallback: tensors and numpy values as plain numbers / lists (``json.dumps(..., default=plain)``)."""
    if isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"a {type(value).__name__} cannot be written to JSON")


def to_json(values: dict) -> str:
    """Strict JSON: NaN and infinities become null (``json.dumps`` would write bare ``NaN``)."""
    def clean(v):
        if isinstance(v, float) and not np.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    return json.dumps(clean(values), indent=2, allow_nan=False)
