"""Post-training quantization math, one idea a module, pure functions of arrays and values.

:mod:`~quantpipe.quant.codes` (the bit-width rule, codes, packing),
:mod:`~quantpipe.quant.linear` (a linear model, and the prediction kernel),
:mod:`~quantpipe.quant.rounding` (data-aware rounding), :mod:`~quantpipe.quant.casts`
(float baselines) and :mod:`~quantpipe.quant.integer` (integer-only inference).
"""
