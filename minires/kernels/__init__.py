"""Hand-written kernels: pure functions over arrays that know nothing of ``Tensor``.

Each family has ``*_forward(...) -> (output, cache)`` and ``*_backward(grad, cache) -> grads``, in
the style of CS231n's ``layers.py``; every function takes its array module ``xp`` from its inputs,
so one kernel serves NumPy, CuPy and the strict stand-in. ``minires.ops`` wraps them as graph nodes.

``reference`` holds the same kernels written the obvious way (loops over kernel offsets, channels
and groups, in the students' argument order and layout); every fast kernel is tested against it
(``tests/test_kernels_reference.py``), and each docs page in ``docs/kernels`` starts from it.
"""
