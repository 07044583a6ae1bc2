"""``minires.utils`` (PyTorch's ``torch.utils``): an old path kept for programs written for torch.
Its one package, ``utils.data``, is :mod:`minires.compat.data`."""
from . import data  # noqa: F401  (light: NumPy and minires.data.loader only)
