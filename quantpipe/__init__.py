"""quantpipe: a DVC pipeline that trains, quantizes and evaluates a linear model.

One module per DVC stage (``fetch``, ``split``, ``train``, ``quantize``, ``evaluate``), each
with a ``main()``; the pure code they share lives in ``params``, ``quantization``,
``modelfile``, ``metrics`` and ``io``.
"""

__version__ = "0.1.0"
