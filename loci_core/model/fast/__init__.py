"""The speed layer: every rewrite of the reference model (`nn/`, `loci.py`) made only for speed, switched on
by `model.implementation: fast` (the default). Each function here takes a reference module and computes
that module's function another way, from the module's own parameters; weights it derives from them are
kept while the parameters do not change (`cache.py`). tests/test_implementations.py holds both paths to
the same outputs and gradients."""
