"""``quantpipe serve``: the models over the Open Inference Protocol (KServe V2), REST.

:mod:`~quantpipe.serve.protocol` parses and formats the messages (pure),
:mod:`~quantpipe.serve.telemetry` keeps the Prometheus metrics and the drift window,
:mod:`~quantpipe.serve.app` is the Starlette app, and :mod:`~quantpipe.serve.command` the
command that runs it under uvicorn.
"""
