"""The engine: a scenario with its values becomes flat arrays (``compile``), trajectories
drawn from them by numba kernels (``kernels``, ``simulate``) or the exact chain solved on the
same arrays (``exact``), and one ``Result`` for both (``results``). Plumbing beside them:
chunk streams on a Dask cluster (``cluster``), checkpoints of long jobs (``checkpoint``), the
choice of engine for a metric (``evaluate``), shared numbers (``numbers``). The worlds engine
(``batches``, ``batch_kernels``) solves many parameter sets of a memoryless scenario at once.
"""
