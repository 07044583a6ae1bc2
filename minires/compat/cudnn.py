"""``torch.backends.cudnn`` for minires (``mr.backends.cudnn``): the flags PyTorch programs set
(``cudnn.benchmark = True``, ``cudnn.deterministic = True``), accepted and without effect.

minires does not call cuDNN: its convolution is the hand-written im2col + matrix product of
:mod:`minires.kernels.conv` on every device (cuBLAS on a GPU through CuPy). There is no algorithm
search to switch on (``benchmark``), and the kernels are deterministic for a given input: no
atomics or scatter with repeated indices (``deterministic``). ``is_available()`` says False.
"""
benchmark = False
deterministic = False
enabled = True


def is_available() -> bool:
    """False: minires' kernels do not use cuDNN (see the module docstring)."""
    return False


def version():
    return None
