"""PyTorch twins of minires's nets, for the benchmarks and the depth sweep (PyTorch is optional:
these functions take the ``torch`` module as their first argument)."""
from __future__ import annotations


def _basic_block(torch, shortcut: str):
    """The basic block class (two 3x3 convolutions with batch norm) with a ``shortcut`` of
    ``"none"`` (a plain block), ``"A"`` (identity, subsampled and zero-padded where the shape
    changes) or ``"B"`` (a 1x1 projection with batch norm where the shape changes)."""
    nn, tf = torch.nn, torch.nn.functional

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.cin, self.cout, self.stride = cin, cout, stride
            self.changes = stride != 1 or cin != cout
            self.proj = None
            if shortcut == "B" and self.changes:
                self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.b2(self.c2(tf.relu(self.b1(self.c1(x)))))
            if shortcut == "none":
                return tf.relu(out)
            if self.proj is not None:
                return tf.relu(out + self.proj(x))
            if shortcut == "A" and self.changes:
                x = tf.pad(x[:, :, ::self.stride, ::self.stride],
                           (0, 0, 0, 0, 0, self.cout - self.cin))
            return tf.relu(out + x)

    return Block


def torch_cifar_resnet(torch, depth: int, width: int = 16, residual: bool = True,
                       num_classes: int = 10):
    """The CIFAR net of ``depth = 6n + 2`` layers (the paper's section 4.2) with base ``width``:
    3x3 convolutions without bias, batch norm, ReLU; a residual net has option-A shortcuts, a
    plain one none."""
    nn = torch.nn
    block = _basic_block(torch, "A" if residual else "none")
    n = (depth - 2) // 6
    layers = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    cin = width
    for cout, stride in ((width, 1), (2 * width, 2), (4 * width, 2)):
        for i in range(n):
            layers.append(block(cin, cout, stride if i == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


def torch_imagenet_resnet(torch, depth: int):
    """ImageNet ResNet-18/34 as in the paper's Table 1 (option B: projection when shapes change)."""
    nn = torch.nn
    counts = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}[depth]
    block = _basic_block(torch, "B")
    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
              nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for stage, (cout, n) in enumerate(zip((64, 128, 256, 512), counts)):
        for i in range(n):
            layers.append(block(cin, cout, 2 if stage > 0 and i == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000)]
    return nn.Sequential(*layers)


def init_he_(torch, model):
    """minires's initialisation (``minires.models.resnet.init_he_``): He-normal convolutions
    (fan in, ReLU gain), the classifier's weight PyTorch's default and its bias zero."""
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(m, torch.nn.Linear):
            torch.nn.init.zeros_(m.bias)
    return model
