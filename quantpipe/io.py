"""Atomic, deterministic file writers and a strict ``.npz`` reader.

Outputs are written to a temporary file beside their target and renamed over it, so an
interrupted stage leaves either the old file or none, never half a file. ``.npz`` archives are
written with fixed zip timestamps so that the same arrays always give the same bytes: DVC
records the hash of every output in ``dvc.lock``, and a fresh clone must rebuild it exactly.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from quantpipe.errors import OutputError, QuantpipeError

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path that is renamed to ``path`` when the block succeeds.

    The parent directory is created if needed. If the block raises, the temporary file is
    removed and ``path`` is left untouched.

    Raises
    ------
    OutputError
        If the folder or the file cannot be written (a full disk, a read-only folder, no
        permission), naming ``path`` and the reason: an ``OSError`` of the block is taken
        for a failed write.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror})") from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror}); it is unchanged") from None
    finally:
        tmp_path.unlink(missing_ok=True)


def _write_with(path: str | Path, mode: str, write: Callable[[IO[Any]], object]) -> None:
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        write(fh)


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    _write_with(path, "w", lambda fh: fh.write(text))


def without_negative_zero(data: Any) -> Any:
    """``data`` with every float ``-0.0`` in it (in dicts, lists, tuples) made ``0.0``.

    A zero's sign carries no information in a metric or a header, but JSON keeps it, so a
    zero that changes sign would show as a change in ``git diff`` and ``dvc metrics diff``.
    """
    if isinstance(data, float):
        return data + 0.0  # -0.0 + 0.0 == 0.0; every other float is unchanged
    if isinstance(data, dict):
        return {k: without_negative_zero(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [without_negative_zero(v) for v in data]
    return data


def json_text(data: Any, **options: Any) -> str:
    """JSON of ``data`` as every output of the project writes it.

    No NaN or infinity, no ``-0.0``, floats as Python's shortest round-trip repr (the same on
    every machine).
    """
    return json.dumps(without_negative_zero(data), allow_nan=False, **options)


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON (:func:`json_text`) with a trailing newline, atomically."""
    write_text(path, json_text(data, indent=2) + "\n")


def save_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays to an uncompressed ``.npz`` archive, atomically and reproducibly.

    The same arrays always give the same bytes.

    Parameters
    ----------
    path : str or Path
        The archive to write.
    arrays : mapping of str to ndarray
        Member names and arrays. Object arrays are refused: the archive must load with
        ``allow_pickle=False``.
    """

    def write(fh: IO[bytes]) -> None:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, array in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
                info.external_attr = 0o644 << 16
                with zf.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(
                        member, np.ascontiguousarray(array), allow_pickle=False
                    )

    _write_with(path, "wb", write)


def load_npz(path: str | Path, error: type[QuantpipeError]) -> dict[str, np.ndarray]:
    """Read every member of an ``.npz`` archive without ever unpickling.

    Parameters
    ----------
    path : str or Path
    error : subclass of QuantpipeError
        What to raise, so that a data file and a model file fail in their own terms.

    Returns
    -------
    dict of str to ndarray

    Raises
    ------
    error
        If ``path`` does not exist, or is not a readable ``.npz`` archive (corrupt,
        truncated, or holding object arrays), with a one-line message that says how to
        rebuild it.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: not found; run `dvc repro` to build it")
    try:
        with path.open("rb") as handle, zipfile.ZipFile(handle) as archive:
            return {
                info.filename.removesuffix(".npy"): _read_member(archive, info)
                for info in archive.infolist()
            }
    # RuntimeError: an encrypted member; NotImplementedError: an unknown compression method
    except (
        OSError,
        ValueError,
        EOFError,
        zipfile.BadZipFile,
        RuntimeError,
        NotImplementedError,
    ) as exc:
        raise error(
            f"{path}: corrupt or truncated ({exc}); delete it and run `dvc repro` to rebuild it"
        ) from None


def _read_at_most(stream: IO[bytes], limit: int, chunk: int = 1 << 20) -> bytearray:
    """Up to ``limit`` bytes, a chunk at a time: ``read(limit)`` would allocate ``limit``."""
    data = bytearray()
    while len(data) < limit and (part := stream.read(min(chunk, limit - len(data)))):
        data += part
    return data


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One ``.npy`` member, its header checked against the bytes it really holds.

    A header may claim any shape (10¹² elements, say), and the zip's directory any size:
    both are the file author's word. So the data is read in full, at most one byte more
    than the header claims, and the array is made only if the count is exactly right; no
    allocation is ever larger than what was read.

    Raises
    ------
    ValueError
        If the header is malformed, claims an object dtype, or claims more or fewer bytes
        than the member holds.
    """
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise ValueError(f"member {info.filename} is .npy version {version}, not 1.0 or 2.0")
        if dtype.hasobject:
            raise ValueError(f"member {info.filename} holds Python objects, which are not read")
        claimed = math.prod(shape) * dtype.itemsize
        data = _read_at_most(member, claimed + 1)
    if len(data) != claimed:
        raise ValueError(
            f"member {info.filename} claims shape {shape} of {dtype} ({claimed} bytes) but "
            f"holds {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
