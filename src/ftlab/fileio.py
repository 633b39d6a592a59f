"""Writing files so a crash never leaves half of one, and reading tensors without running code.

Every file a run produces goes through `atomic_write_*`: the bytes land in a temporary file in
the same folder, are flushed to disk, and replace the target in one `os.replace`. A kill at
any moment leaves either the old file or the new one, never a mixture.
"""

from __future__ import annotations

import io
import os
import pickle
import uuid
import zipfile
from pathlib import Path
from typing import Any

import torch

from ftlab.errors import CheckpointError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    # A unique hidden name beside the target (same filesystem, so the rename is atomic);
    # opened with "xb" so it gets normal permissions under the umask, unlike mkstemp's 0600.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def torch_bytes(obj: Any) -> bytes:
    """Serialise with `torch.save` into memory, so one checkpoint can be written to two files."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def torch_load_safely(path: str | Path, what: str, error: type[Exception] = CheckpointError) -> Any:
    """`torch.load(weights_only=True)`: tensors and plain containers only, never code.

    Args:
        path: File to read.
        what: Words for the error message ("weights file", "checkpoint").
        error: Exception class raised (with one line naming the file) when reading fails.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        blocked = _blocked_global(str(err))
        if blocked is None:  # not a pickle at all, or a damaged one
            raise error(f"{what} {path} cannot be read: it is truncated, corrupt or not a "
                        "PyTorch file") from None
        raise error(f"{what} {path} holds a Python object ({blocked}) rather than only tensors "
                    "and plain containers; ftlab refuses to unpickle it because that can run "
                    "code; re-save it with torch.save(model.state_dict(), PATH)") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError):
        raise error(f"{what} {path} cannot be read: it is truncated, corrupt or not a PyTorch "
                    "file") from None


def _blocked_global(message: str) -> str | None:
    """The object torch's weights-only unpickler refused, e.g. 'posix.system'; None if none."""
    for line in message.splitlines():
        if "GLOBAL" in line:
            words = line.split()
            return words[words.index("GLOBAL") + 1] if "GLOBAL" in words[:-1] else "a global"
    return None


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where directories can't be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
