"""Model builders."""
from .cifarnet import cifarnet_small

__all__ = ["cifarnet_small"]
