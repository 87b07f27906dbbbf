"""Kernels run on this machine: the offline runner and its console, JupyterLab, variants, local training and the
optimiser."""
