"""The second model family: a small convolutional network for the MNIST digits.

Data (:mod:`~quantpipe.mnist.source`, :mod:`~quantpipe.mnist.data`), the network's numpy
inference (:mod:`~quantpipe.mnist.network`), its training in PyTorch
(:mod:`~quantpipe.mnist.training`, the only module that imports torch), post-training
quantization with integer-only inference (:mod:`~quantpipe.mnist.quantize`), model files
(:mod:`~quantpipe.mnist.modelfile`) and evaluation (:mod:`~quantpipe.mnist.evaluation`).
"""
