"""``minires.models``: the plain and residual nets of the paper."""
from .blocks import (BasicBlock, Block, Bottleneck, ZeroPadShortcut, make_shortcut,  # noqa
                     projection)
from .resnet import (Network, cifar_resnet, get_model, imagenet_resnet, init_he_,  # noqa
                     is_cifar_depth, is_imagenet_name, parse_model_name, plain18, plain20,
                     plain32, plain34, plain44, plain50, plain56, plain101, plain110, plain152,
                     plain1202, resnet18, resnet20, resnet32, resnet34, resnet44, resnet50,
                     resnet56, resnet101, resnet110, resnet152, resnet1202)
from .summary import ModelSummary, summary  # noqa: F401
