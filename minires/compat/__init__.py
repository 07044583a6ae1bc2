"""PyTorch compatibility: the shims, in one place.

These modules exist only so that programs written for torch run with the import changed
(``import minires as torch`` in spirit: ``torch.backends.cudnn.benchmark = True``,
``torch.utils.data.DataLoader(ds, batch_size=128, num_workers=4)``). Each one takes PyTorch's
names and keywords and hands the work to minires's own code; what it accepts and ignores, and why,
is in its docstring. Code written for minires need not use them: each entry below names the
minires way.

* :mod:`.cudnn`: ``torch.backends.cudnn``, at ``minires.backends.cudnn``; minires calls no cuDNN,
  so its flags are accepted and change nothing;
* :mod:`.accelerator` and :mod:`.cuda`: ``torch.accelerator`` and ``torch.cuda``, at
  ``minires.accelerator`` and ``minires.cuda``; minires's own names are those of
  :mod:`minires.devices.backend` (``cuda_is_available``, ``cuda_device_count``);
* :mod:`.data`: ``torch.utils.data``, at ``minires.utils.data`` (and its ``distributed``, at
  ``minires.utils.data.distributed``); minires's own loader is :mod:`minires.data`, whose
  ``TensorDataset`` is the very one served here;
* ``Variable`` (``torch.autograd.Variable``), at ``minires.autograd.Variable``; minires's own
  spelling is ``mr.tensor(x, requires_grad=True)``;
* ``DataParallel`` (``torch.nn.DataParallel``), at ``minires.nn.DataParallel``; minires's own is
  ``minires.nn.DistributedDataParallel``.

The old paths name these very modules (not copies), so a flag set through one is seen through
the other. The last two shims are names, not modules, and stay in the package that PyTorch's path
names (five lines in :mod:`minires.autograd.tensor`, and :mod:`minires.nn.parallel`): this package
sits above ``autograd`` and ``nn``, so they could not import it without a circle.

Nothing is imported here: each module loads when it is asked for.
"""
