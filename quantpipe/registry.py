"""Inference on the pipeline's model files with numpy alone: no scikit-learn, no pickle.

:class:`ModelRegistry` loads every model ``dvc repro`` built (``models/fp64.npz`` and
every ``models/quantized/*.npz``: q{bits}, q{bits}i, the casts) through
:func:`quantpipe.modelfile.load_model`, which checks each file's format, version and header.
:func:`check_features` validates a batch of rows. The arithmetic is
:func:`quantpipe.quant.linear.predict`, the one the evaluate stage uses, so the predictions
are the same bits.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quantpipe.errors import InputError, ModelFileError, UnknownModelError
from quantpipe.modelfile import load_model
from quantpipe.models import Model
from quantpipe.quant.casts import CASTS
from quantpipe.variants import DERIVED_VARIANT


def _order(match: re.Match) -> tuple[int, int]:
    """fp64 first (not derived), then q{bits} by width, q{bits}i by width, then the casts."""
    if match.group(1) is not None:
        return (1 if match.group(2) else 0, int(match.group(1)))
    return (2, CASTS.index(match.group(0)))


def check_features(X: np.ndarray, n_features: int) -> np.ndarray:
    """Validate a batch of rows.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Real numbers.
    n_features : int

    Returns
    -------
    ndarray of shape (n_samples, n_features), float64

    Raises
    ------
    InputError
        If the shape is wrong or a value is not finite, naming the first bad row (0-based).
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise InputError(f"expected rows of {n_features} values, got shape {list(X.shape)}")
    if X.dtype.kind not in "fiu" or X.dtype == np.bool_:
        raise InputError(f"expected real numbers, got {X.dtype}")
    X = X.astype(np.float64, copy=False)
    finite = np.isfinite(X)
    if not finite.all():
        row, col = (int(i) for i in np.argwhere(~finite)[0])
        raise InputError(f"row {row}, column {col}: {X[row, col]} is not a finite number")
    return X


@dataclass(frozen=True)
class ModelRegistry:
    """The models a server or batch command can use, by variant name.

    Attributes
    ----------
    models : mapping of str to LinearModel or IntegerModel
        ``fp64`` first, then ``q{bits}`` by width, ``q{bits}i`` by width, then the casts.
    """

    models: Mapping[str, Model]

    @classmethod
    def from_directory(cls, directory: str | Path = "models") -> ModelRegistry:
        """Load ``fp64.npz`` and ``quantized/*.npz`` from a models directory.

        The quantized files are q{bits}, q{bits}i and the casts.

        Raises
        ------
        ModelFileError
            If a file is corrupt, its header names another variant, the models disagree on
            the features, or there is no model at all.
        """
        directory = Path(directory)
        paths = []
        if (directory / "fp64.npz").exists():  # a directory there is an error, not no model
            paths.append(directory / "fp64.npz")
        quantized = directory / "quantized"
        if quantized.is_dir():
            found = [
                (m, p)
                for p in quantized.iterdir()
                if p.suffix == ".npz" and (m := DERIVED_VARIANT.fullmatch(p.stem))
            ]
            paths.extend(p for m, p in sorted(found, key=lambda mp: _order(mp[0])))
        for path in paths:
            if not path.is_file():
                raise ModelFileError(f"{path}: not a file; delete it and run `dvc repro`")
        if not paths:
            raise ModelFileError(
                f"{directory}: no model files (fp64.npz, quantized/*.npz); run `dvc repro`"
            )
        models = {}
        for path in paths:
            model = load_model(path, path.stem)
            models[model.variant] = model
        features = {tuple(m.header["feature_names"]) for m in models.values()}
        if len(features) != 1:
            raise ModelFileError(
                f"{directory}: the models disagree on the features; run `dvc repro`"
            )
        return cls(models)

    def __iter__(self) -> Iterator[str]:
        """The model names, fp64 first, then by kind and width."""
        return iter(self.models)

    def __contains__(self, name: object) -> bool:
        """Whether the registry holds a model of that name."""
        return name in self.models

    def get(self, name: str) -> Model:
        """The model of a variant name.

        Raises
        ------
        UnknownModelError
            Naming the models that are available.
        """
        try:
            return self.models[name]
        except KeyError:
            raise UnknownModelError(
                f"unknown model {name!r}; available: {', '.join(self.models)}"
            ) from None

    @functools.cached_property
    def feature_names(self) -> tuple[str, ...]:
        """The features every model takes, in order (made once: the server asks per request)."""
        return tuple(next(iter(self.models.values())).header["feature_names"])
