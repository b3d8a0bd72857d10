"""numba kernels: arrays in, arrays out. Nothing here knows about scenarios or the UI."""
