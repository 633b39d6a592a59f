"""Writing files so a crash never leaves half of one, and reading tensors without running code.

Every file a run produces goes through `atomic_write_*`: the bytes land in a temporary file in
the same folder, are flushed to disk, and replace the target in one `os.replace`. A kill at
any moment leaves either the old file or the new one, never a mixture.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import uuid
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no flock; folders are then not guarded
    fcntl = None  # type: ignore[assignment]

import torch

from ftlab.errors import CheckpointError, ConfigError, FileWriteError, RunDirError
from ftlab.faults import failpoint


def atomic_write_bytes(path: str | Path, data: bytes, backup: Path | None = None) -> None:
    """Replace `path` with `data` in one rename; with `backup`, the old file becomes `backup`
    (a hard link made only once the new bytes are safely on disk)."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        with open(tmp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        failpoint("atomic_write")
        if backup is not None and path.is_file():
            _keep_copy(path, backup)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        reason = err.strerror or str(err)
        raise FileWriteError(f"could not write {path} ({reason}); its previous version is "
                             "intact — free space or fix permissions, then run the command "
                             "again (a run continues with --resume)", reason) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _temporary(path: Path) -> Path:
    # A unique hidden name beside the target (same filesystem, so the rename is atomic);
    # opened with "xb" so it gets normal permissions under the umask, unlike mkstemp's 0600.
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _keep_copy(path: Path, backup: Path) -> None:
    tmp = _temporary(backup)
    try:
        os.link(path, tmp)
    except OSError:  # no hard links on this filesystem
        shutil.copyfile(path, tmp)
    os.replace(tmp, backup)


def user_path(text: str | Path, what: str = "path") -> Path:
    """`text` as a path with `~` and `~user` expanded; a user that does not exist is one
    line naming the setting (pathlib raises RuntimeError there)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        raise ConfigError(f"{what} {str(text)!r} starts with ~ but names no user of this "
                          "machine; write the folder out in full") from None


def check_writable(folder: str | Path, what: str) -> None:
    """Refuse, before any work, a folder that cannot be written: `folder`, or where it does
    not exist yet the nearest folder above it (where it would be created). Probed by
    creating a file, which catches what permission bits alone do not tell (read-only
    filesystems, immutable folders, root's exemptions)."""
    folder = Path(folder)
    parent = folder
    while not parent.exists() and not parent.is_symlink() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise RunDirError(f"{what} {folder}: {parent} is a file, not a folder; choose another "
                          "path")
    probe = _temporary(parent / "write-check")
    try:
        with open(probe, "xb"):
            pass
    except OSError as err:
        raise RunDirError(f"{what} {folder} cannot be written ({err.strerror or err} in "
                          f"{parent}); choose a folder you can write to") from None
    probe.unlink(missing_ok=True)


def check_output_files(paths: Sequence[Path], what: str) -> None:
    """Refuse, before any work, output files that are not regular files where they exist
    (writing to a FIFO blocks, a folder cannot be replaced) or whose folder cannot be
    written."""
    for path in paths:
        _check_file_path(path, what)
    for folder in dict.fromkeys(Path(path).parent for path in paths):
        check_writable(folder, what)


def _check_file_path(path: str | Path, what: str) -> Path:
    """`path` as a Path, refused when empty or naming a folder, FIFO, socket or device."""
    if not str(path).strip():
        raise RunDirError(f"{what} is empty; name a file, or leave the option out for the "
                          "default")
    path = Path(path)
    if path.is_dir():
        raise RunDirError(f"{what} {path} is a folder; pass a file path")
    if path.exists() and not path.is_file():
        raise RunDirError(f"{what} {path} is not a regular file (a FIFO, socket or device); "
                          "choose another path")
    return path


def check_output_folder(folder: str | Path, marker: str, command: str,
                        option: str = "--output-dir") -> Path:
    """Refuse, before any work, to write a command's files into a folder holding something
    else: `folder` may be absent, empty, or hold `marker` from an earlier run of the same
    command (whose files are then replaced). A typo'd or swapped path (a dataset, a run
    folder) thus never gains files it did not have; nor is the work done for a folder that
    cannot be written.
    """
    if not str(folder).strip():
        raise RunDirError(f"{option} is empty; name a folder, or leave the option out for "
                          f"`ftlab {command}`'s default")
    folder = Path(folder)
    if folder.exists():
        _check_own_folder(folder, marker, command, option)
    check_writable(folder, option)
    return folder


def _check_own_folder(folder: Path, marker: str, command: str, option: str) -> None:
    """An existing output folder must be empty or hold `marker` (see check_output_folder)."""
    if not folder.is_dir():
        raise RunDirError(f"{option} {folder} is a file; pass a folder for `ftlab {command}` "
                          "to write into")
    if (folder / marker).is_file():
        return
    try:
        occupied = next(folder.iterdir(), None) is not None
    except OSError as err:
        raise RunDirError(f"{option} {folder} cannot be read ({err.strerror or err})") from None
    if occupied:
        raise RunDirError(f"{option} {folder} already holds other files (no {marker} of an "
                          f"earlier `ftlab {command}`); pass a new or empty folder")


def check_replaceable(folder: str | Path, marker: str, command: str, overwrite: bool,
                      option: str = "--output-dir") -> Path:
    """`check_output_folder`, but an earlier output of the same command is replaced only
    with `overwrite`: outputs a user may still want (an evaluation, an export) are never
    lost to a repeated command line."""
    folder = check_output_folder(folder, marker, command, option)
    if (folder / marker).is_file() and not overwrite:
        raise RunDirError(f"{option} {folder} already holds the output of an earlier `ftlab "
                          f"{command}`; pass --overwrite to replace it, or choose another "
                          f"{option}")
    return folder


def check_new_file(path: str | Path, overwrite: bool, what: str,
                   protected: Sequence[str] = ()) -> Path:
    """Refuse to replace an existing file unless `overwrite`, and never a folder, a file
    that is not a regular one, a folder that cannot be written, or a file named in
    `protected` (files ftlab reads back, which --overwrite must not destroy)."""
    path = _check_file_path(path, what)
    if path.name in protected and path.exists():
        raise RunDirError(f"{what} {path} is a file ftlab reads back ({path.name}), which "
                          "--overwrite never replaces; choose another path")
    if path.exists() and not overwrite:
        raise RunDirError(f"{what} {path} already exists; pass --overwrite to replace it, "
                          "or choose another path")
    if not path.parent.is_dir():
        raise RunDirError(f"{what} {path}: folder {path.parent} does not exist; create it "
                          "or choose another path")
    check_writable(path.parent, f"{what} {path}: folder")
    return path


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
    damaged = _damaged_member(path)
    if damaged is not None:
        raise error(f"{what} {path} is corrupt: the checksum of its part '{damaged}' does not "
                    "match (a damaged copy or disk); use another copy")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol": the error says it
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        blocked = _blocked_global(str(err))
        if blocked is None:  # not a pickle at all, or a damaged one
            raise error(f"{what} {path} cannot be read: it is truncated, corrupt or not a "
                        "PyTorch file") from None
        raise error(f"{what} {path} holds a Python object ({blocked}) rather than only tensors "
                    "and plain containers; ftlab refuses to unpickle it because that can run "
                    "code; re-save it with torch.save(model.state_dict(), PATH)") from None
    except Exception:  # noqa: BLE001 - a damaged or foreign file fails anywhere in the
        # unpickler (RuntimeError, EOFError, KeyError, IndexError on a stray text file, ...)
        raise error(f"{what} {path} cannot be read: it is truncated, corrupt or not a PyTorch "
                    "file") from None


def _damaged_member(path: Path) -> str | None:
    """The first part of a zip-format torch file whose CRC-32 does not match, if any.

    torch.load does not check these checksums: flipped bits inside a tensor load silently as
    wrong weights. Legacy (non-zip) files have no checksums to check.
    """
    try:
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as archive:
            return archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError):
        return None  # unreadable as zip: torch.load reports it


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


class LockHeld(Exception):
    """Another process holds the lock; `holder` is its pid as it wrote it ("unknown")."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


@contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Hold an flock on `lock_file` (created, with this process's pid in it) or raise
    `LockHeld` at once. The kernel drops the lock when its process dies however it dies, so
    a killed process never leaves a stale lock behind."""
    if fcntl is None:
        yield
        return
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise LockHeld(os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                           ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def lock_in_use(lock_file: Path) -> bool:
    """Whether a live process holds `lock_file` (False when the file does not exist)."""
    if fcntl is None or not lock_file.is_file():
        return False
    try:
        with exclusive_lock(lock_file):
            return False
    except LockHeld:
        return True
