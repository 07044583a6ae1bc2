"""The dtypes of minires (NumPy's, under PyTorch's names) and how a dtype argument is read.

``as_dtype`` accepts a NumPy dtype, a type or a name (``"float32"``, ``"double"``, ``"long"``);
``type_name``/``dtype_of_type_name`` map dtypes to PyTorch's tensor type names
(``"FloatTensor"``), for ``Tensor.type()``.
"""
from __future__ import annotations

from typing import Any

import numpy

float16 = numpy.dtype(numpy.float16)
float32 = numpy.dtype(numpy.float32)
float64 = numpy.dtype(numpy.float64)
int32 = numpy.dtype(numpy.int32)
int64 = numpy.dtype(numpy.int64)
bool_ = numpy.dtype(numpy.bool_)

DTYPE_NAMES = {"float16": float16, "half": float16, "float32": float32, "float": float32,
               "float64": float64, "double": float64, "int32": int32, "int64": int64,
               "long": int64, "bool": bool_}

TYPE_NAME_DTYPES = {"FloatTensor": float32, "DoubleTensor": float64, "HalfTensor": float16,
                    "LongTensor": int64, "IntTensor": int32, "BoolTensor": bool_}
DTYPE_TYPE_NAMES = {dtype: name for name, dtype in TYPE_NAME_DTYPES.items()}


def is_dtype_name(value: Any) -> bool:
    """Whether ``value`` is one of the dtype names above (a string that is not a device)."""
    return isinstance(value, str) and value in DTYPE_NAMES


def as_dtype(dtype: Any) -> numpy.dtype:
    """Normalise a dtype given as a NumPy dtype, a type or a name ("float32")."""
    if is_dtype_name(dtype):
        return DTYPE_NAMES[dtype]
    try:
        return numpy.dtype(dtype)
    except TypeError:
        raise TypeError(f"not a dtype: {dtype!r}") from None
