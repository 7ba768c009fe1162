"""Where the data comes from: the canonical archive, downloaded or local, checked, no pickle.

California Housing is the StatLib archive ``cal_housing.tgz`` (Pace & Barry, 1997) at the
address scikit-learn's fetcher downloads it from. :func:`fetch_dataset` looks for it in the
data folder (``QUANTPIPE_DATA``, else ``~/.cache/quantpipe``), downloads it there if it is
missing (with pooch, which checks the download's sha256), then reads the one member that
holds the data and checks the sha256 of its *content* before parsing it: a re-compressed
copy of the archive is accepted, any other content is refused before it is read. Nothing is
unpickled (scikit-learn's own cache is a pickle, and a pickle runs code when loaded).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tarfile
import zlib
from pathlib import Path

import numpy as np

from quantpipe.data import (
    N_ROWS,
    REFETCH,
    Dataset,
    dataset_from_table,
    validate_dataset,
    verify_digests,
)
from quantpipe.errors import DataError, cut, one_line

ENV_DATA = "QUANTPIPE_DATA"
ARCHIVE = "cal_housing.tgz"
ARCHIVE_URL = "https://ndownloader.figshare.com/files/5976036"
#: sha256 of the archive as its canonical address serves it (what scikit-learn checks too).
ARCHIVE_SHA256 = "aaa5c9a6afe2225cc2aed2723682ae403280c4a3695a2ddda4ffb5d8215ea681"
MEMBER = "CaliforniaHousing/cal_housing.data"
#: sha256 of the member's content: 20,640 lines of 9 comma-separated numbers.
MEMBER_SHA256 = "a2b44dcc7e1c9091b43c4f458b25cbd1f7e8068d08edd26bc4703108d3fa6214"
MEMBER_MAX_BYTES = 4 * 1024 * 1024  # the real one is 1.9 MB: refuse a decompression bomb
#: The archive's columns (longitude, latitude, age, rooms, bedrooms, population, households,
#: income, value) in the order of scikit-learn's table: value first, then the rest.
COLUMNS = [8, 7, 2, 3, 4, 5, 6, 1, 0]
OFFLINE_HINT = (
    f"offline? point it at a local copy: {ENV_DATA}=/path/to/folder dvc repro "
    f"(the folder holding {ARCHIVE}; see docs/offline.md)"
)

log = logging.getLogger("quantpipe.data")


def data_folder(folder: str | Path | None = None) -> Path:
    """The folder that holds (or will hold) the archive.

    ``folder`` if given, else ``QUANTPIPE_DATA``, else ``$XDG_CACHE_HOME/quantpipe``
    (``~/.cache/quantpipe``); ``~`` expanded.
    """
    if folder is None:
        cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
        folder = os.environ.get(ENV_DATA) or Path(cache) / "quantpipe"
    return Path(folder).expanduser()


def download(url: str, known_hash: str, folder: Path, name: str, hint: str = OFFLINE_HINT) -> Path:
    """Download ``url`` into ``folder/name``, checking its hash (pooch, two retries).

    Parameters
    ----------
    url : str
    known_hash : str
        pooch's form: ``"sha256:<hex>"`` or ``"md5:<hex>"``.
    folder : Path
    name : str
    hint : str
        The line that says how to work offline, added to the error.

    Raises
    ------
    DataError
        If the download fails or its hash differs, with ``hint``.
    """
    import pooch  # only to download

    log.info("downloading %s into %s", url, folder)
    fetcher = pooch.create(
        path=folder,
        base_url="",
        registry={name: known_hash},
        urls={name: url},
        retry_if_failed=2,
    )
    try:
        return Path(fetcher.fetch(name))
    except (OSError, ValueError) as exc:  # requests' errors are OSErrors; a bad hash, ValueError
        reason = cut(one_line(str(exc)), 160)
        raise DataError(f"could not download {name} ({reason}); {hint}") from None


def member_content(archive: Path, member: str, sha256: str, max_bytes: int) -> bytes:
    """The bytes of one member of a ``.tgz``, if their sha256 is ``sha256``.

    Raises
    ------
    DataError
        If the archive is unreadable, lacks the member, the member is larger than
        ``max_bytes``, or its content differs.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:  # gzip, as served, or any re-packing
            info = tar.getmember(member)
            if not info.isfile() or info.size > max_bytes:
                raise DataError(f"{archive}: {member} is not a file of at most {max_bytes} bytes")
            handle = tar.extractfile(info)
            assert handle is not None  # a regular file, checked above
            content = handle.read()
    except KeyError:
        raise DataError(f"{archive}: has no {member}; {REFETCH}") from None
    except (OSError, EOFError, zlib.error, tarfile.TarError) as exc:
        reason = cut(one_line(str(exc)), 100)  # tarfile's reasons span lines
        raise DataError(f"{archive}: unreadable ({reason}); {REFETCH}") from None
    digest = hashlib.sha256(content).hexdigest()
    if digest != sha256:
        raise DataError(
            f"{archive}: {member} differs from the canonical data (sha256 {digest[:12]}…, "
            f"expected {sha256[:12]}…); {REFETCH}"
        )
    return content


def table_from_text(content: bytes) -> np.ndarray:
    """The archive's rows as scikit-learn's table: shape (20640, 9), the target first.

    Parameters
    ----------
    content : bytes
        The member's text, already checked (:func:`member_content`).
    """
    table = np.loadtxt(io.BytesIO(content), delimiter=",", dtype=np.float64)
    return np.ascontiguousarray(table[:, COLUMNS])


def fetch_dataset(folder: str | Path | None = None) -> Dataset:
    """Fetch, validate and verify California Housing.

    Parameters
    ----------
    folder : str or Path, optional
        The data folder (:func:`data_folder`); the archive is downloaded there if missing.

    Returns
    -------
    Dataset
        X of shape (20640, 8) and y of shape (20640,), float64: the arrays of
        scikit-learn's ``fetch_california_housing``, bit for bit.

    Raises
    ------
    DataError
        If the download fails (with the line that says how to work offline), the archive is
        unreadable, or its content is not the canonical data set.
    """
    home = data_folder(folder)
    archive = home / ARCHIVE
    if archive.is_file():
        log.info("reading California Housing from %s", archive)
    else:
        archive = download(ARCHIVE_URL, f"sha256:{ARCHIVE_SHA256}", home, ARCHIVE)
    content = member_content(archive, MEMBER, MEMBER_SHA256, MEMBER_MAX_BYTES)
    data = dataset_from_table(table_from_text(content), str(archive))
    validate_dataset(data, str(archive), N_ROWS)
    verify_digests(data, str(archive))
    return data
