"""Where the digits come from: the four canonical IDX files, downloaded or local, checked.

:func:`fetch_digits` looks for ``train-images-idx3-ubyte.gz`` and its three siblings in
``mnist/`` under the data folder (``QUANTPIPE_DATA``, else ``~/.cache/quantpipe``; the same
folder as the housing archive), downloads any that is missing from the mirrors torchvision
lists (pooch, which checks each download's md5), then checks the sha256 of each file's
*decompressed* content before parsing it: a re-compressed copy is accepted, other content is
refused.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import zlib
from pathlib import Path
from typing import NamedTuple

from quantpipe.errors import DataError, cut
from quantpipe.mnist.data import IMAGE_MAGIC, LABEL_MAGIC, Digits, parse_idx, validate_digits
from quantpipe.source import ENV_DATA, data_folder, download

SUBFOLDER = "mnist"
#: The mirrors torchvision downloads MNIST from, in its order.
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
REFETCH = "delete it so that it is downloaded again, or replace it with a good copy"
OFFLINE_HINT = (
    f"offline? point it at a local copy: {ENV_DATA}=/path/to/folder dvc repro "
    f"(the folder whose {SUBFOLDER}/ holds the four .gz files; see docs/offline.md)"
)

log = logging.getLogger("quantpipe.mnist")


class IdxFile(NamedTuple):
    """One canonical file: its name, the md5 of the canonical ``.gz``, and its content."""

    name: str
    gz_md5: str
    size: int
    sha256: str
    magic: int


FILES = (
    IdxFile(
        "train-images-idx3-ubyte.gz",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        47_040_016,
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        IMAGE_MAGIC,
    ),
    IdxFile(
        "train-labels-idx1-ubyte.gz",
        "d53e105ee54ea40749a09fcbcd1e9432",
        60_008,
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        LABEL_MAGIC,
    ),
    IdxFile(
        "t10k-images-idx3-ubyte.gz",
        "9fb629c4189551a2d022fa330f9573f3",
        7_840_016,
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        IMAGE_MAGIC,
    ),
    IdxFile(
        "t10k-labels-idx1-ubyte.gz",
        "ec29112dd5afa0611ce80d1b7f02629c",
        10_008,
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        LABEL_MAGIC,
    ),
)


def gz_content(path: Path, size: int, sha256: str) -> bytes:
    """The decompressed bytes of ``path``, if there are ``size`` of them with this sha256.

    Reads at most ``size + 1`` bytes, so a decompression bomb costs no memory.

    Raises
    ------
    DataError
        If the file is not gzip, is truncated, or its content differs.
    """
    try:
        with gzip.open(path, "rb") as handle:
            content = handle.read(size + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: unreadable ({cut(str(exc), 100)}); {REFETCH}") from None
    digest = hashlib.sha256(content).hexdigest()
    if len(content) != size or digest != sha256:
        many = f"more than {size}" if len(content) > size else str(len(content))
        raise DataError(
            f"{path}: content differs from the canonical file ({many} bytes, sha256 "
            f"{digest[:12]}…; expected {size} bytes, {sha256[:12]}…); {REFETCH}"
        )
    return content


def locate(file: IdxFile, folder: Path, mirrors: tuple[str, ...] = MIRRORS) -> Path:
    """``folder/file.name`` if it exists, else downloaded there from the first mirror that works.

    Raises
    ------
    DataError
        If every mirror fails, with the line that says how to work offline.
    """
    path = folder / file.name
    if path.is_file():
        return path
    for mirror in mirrors[:-1]:
        try:
            return download(mirror + file.name, f"md5:{file.gz_md5}", folder, file.name)
        except DataError:
            log.warning("could not download %s from %s; trying the next mirror", file.name, mirror)
    return download(mirrors[-1] + file.name, f"md5:{file.gz_md5}", folder, file.name, OFFLINE_HINT)


def fetch_digits(folder: str | Path | None = None) -> Digits:
    """Fetch, check and validate the four MNIST files.

    Parameters
    ----------
    folder : str or Path, optional
        The data folder (:func:`quantpipe.source.data_folder`); the files are in (or are
        downloaded to) its ``mnist/`` subfolder.

    Returns
    -------
    Digits
        Images of shape (n, 28, 28) and labels of shape (n,), uint8: 60,000 training and
        10,000 test.

    Raises
    ------
    DataError
        If a download fails (with the line that says how to work offline), or a file is
        unreadable or not the canonical content.
    """
    home = data_folder(folder) / SUBFOLDER
    arrays = []
    for file in FILES:
        path = locate(file, home)
        log.info("reading %s", path)
        arrays.append(parse_idx(gz_content(path, file.size, file.sha256), file.magic, str(path)))
    return validate_digits(Digits(*arrays), str(home))
