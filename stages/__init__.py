"""The DVC pipeline's entry points: one module per stage of ``dvc.yaml``.

Each runs as ``python -m stages.<name>`` from the repository root. Each loads its inputs, calls the
``quantpipe`` library and saves its outputs; the library holds every rule. Not installed.
"""
