"""quantpipe: train, post-training quantize, evaluate and serve a linear model, reproducibly.

The library behind the DVC pipeline (whose entry points are the repository's ``stages/``)
and the ``quantpipe`` command. From the bottom up: :mod:`~quantpipe.errors`,
:mod:`~quantpipe.numerics` and :mod:`~quantpipe.exact` (machine-independent arithmetic),
:mod:`~quantpipe.io`; the math in :mod:`quantpipe.quant`; :mod:`~quantpipe.params`,
:mod:`~quantpipe.data`, :mod:`~quantpipe.training`, :mod:`~quantpipe.modelfile`,
:mod:`~quantpipe.drift`, :mod:`~quantpipe.metrics`, :mod:`~quantpipe.evaluation`,
:mod:`~quantpipe.gate`, :mod:`~quantpipe.monitoring`; inference in
:mod:`~quantpipe.registry`, :mod:`~quantpipe.batch` and :mod:`quantpipe.serve`; and
:mod:`~quantpipe.cli`, the command-line boundary.
"""

__version__ = "0.1.0"
