"""The device every stage runs on unless told otherwise: chosen at run time, so one notebook runs on CPU and CUDA."""

import torch


def default_device() -> torch.device:
    """CUDA when a device is available at run time, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
