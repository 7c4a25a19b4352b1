"""hrw's development tooling: a local Kubernetes control plane built from Go modules, throwaway
certificates, helm, and the demo. The tests, the benchmarks and ``make demo`` use it; hrw's own
distribution does not ship it, and no part of the product imports it (``tests/unit/test_layers.py``).
"""
