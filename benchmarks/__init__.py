"""Performance benchmarks of the nnlab engine (``python -m benchmarks.run``, ``nnlab bench``).

``benchmarks.workloads`` builds each engine workload three ways (the numba engine, a
plain-numpy reference, and the bare matrix multiplies); ``benchmarks.run`` times them and
prints a table.  (``benchmarks.ui`` measures the TUI.)
"""
