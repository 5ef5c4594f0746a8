"""Argument checks shared by the data modules."""
from __future__ import annotations

import numpy as np


def channel_vector(values, name: str) -> np.ndarray:
    """``values`` as float32 [3]; ValueError naming ``name`` otherwise."""
    arr = np.asarray(values, dtype=np.float32)
    if arr.shape != (3,):
        raise ValueError(f"{name} must have 3 values (one per channel), got shape {arr.shape}")
    return arr


def check_int(value, name: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum``; TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_images(images, name: str = "images") -> np.ndarray:
    """uint8 [N, 3, H, W] array; TypeError/ValueError naming ``name`` otherwise."""
    if not isinstance(images, np.ndarray):
        raise TypeError(f"{name} must be a numpy array uint8 [N, 3, H, W], "
                        f"got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8 [N, 3, H, W], got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must have shape [N, 3, H, W], got {images.shape}")
    return images
