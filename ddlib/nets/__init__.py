"""The network architectures behind :mod:`ddlib.models`' registry, one module per family.

- :mod:`ddlib.nets.layers`: what every network shares (normalisation inside the model, resizing, the
  classifier's shape, the frozen feature extractor);
- :mod:`ddlib.nets.cifar`: the nets trained from scratch on small images (the DD ConvNet, the CIFAR ResNet-18);
- :mod:`ddlib.nets.pretrained`: the nets with pretrained weights (EfficientNet-Lite, timm models) and where
  their weights come from.

A network is declared, once, in :data:`ddlib.models.BACKBONES`; build it through :func:`ddlib.models.create`
(a classifier) or :func:`ddlib.models.backbone` (a frozen feature extractor), not from these classes.
"""
__all__: list[str] = []
