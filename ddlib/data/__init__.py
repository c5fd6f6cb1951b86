"""Dataset registry: every loader returns uint8 images (N, C, H, W), int64 labels and class names.

Names (see :func:`available`; ``python -m ddlib datasets`` says what each needs and where it would load from):

- ``digits``              scikit-learn's 8x8 digits (always there; for unit tests)
- ``fashion-mnist``       IDX files from ``$DDLIB_DATA``, the Debian package ``dataset-fashion-mnist``
                          (``/usr/share/datasets/fashion-mnist``) or torchvision's download when online
- ``cifar10``/``cifar100`` torchvision's files in ``$DDLIB_DATA`` (downloaded when online), or an
                          ImageFolder/archive: ``cifar10:PATH``
- ``imagefolder:PATH``    a folder or ``.tar``/``.tar.gz``/``.tar.xz``/``.zip`` of ``train/<class>/**`` and
                          ``test/<class>/**`` (or ``val/``), read recursively, as torchvision's ImageFolder
- ``tiny-imagenet``, ``imagenette``, ``imagewoof``, ``imagenet`` the ImageNet family, in their own layouts
                          (downloaded where the licence allows; ImageNet never)
- ``synthetic-patterns``  a generated set whose classes are mixtures of known sub-patterns of unequal
                          sizes; ``Dataset.train_patterns`` holds the sub-pattern ids (the truth)

Folders whose decoded images would not fit in memory are streamed: ``ds.train_x`` is then an
:class:`ImageStore` that decodes the images it is indexed with. Every file a loader leaves out is counted
in ``ds.report``. Set ``DDLIB_OFFLINE=1`` to forbid downloads (the tests do).

The package, one module per family: ``core`` (the Dataset, errors, subsampling), ``registry`` (the registry,
the name parser, :func:`load`), ``builtin``, ``idx``, ``cifar``, ``folder``, ``imagenet`` (the loaders),
``images``, ``archives``, ``download`` (their parts) and ``stream`` (the lazy image store).
"""
from __future__ import annotations

from ddlib.data import archives, builtin, cifar, core, download, folder, idx, images, imagenet, registry, stream
from ddlib.data.archives import ARCHIVE_SUFFIXES
from ddlib.data.builtin import make_synthetic_patterns
from ddlib.data.cifar import CIFAR10_CLASSES
from ddlib.data.core import (DataLoadWarning, DataNotFoundError, Dataset, DatasetEntry, UnreadableDataError, data_root,
                             positions_in, subsample, to_float)
from ddlib.data.folder import STREAM_ABOVE_BYTES, Layout, load_tree
from ddlib.data.idx import DEBIAN_FASHION_MNIST, FASHION_CLASSES, fashion_mnist_locations
from ddlib.data.images import IMAGE_SUFFIXES
from ddlib.data.registry import (DATASETS, PATH_PREFIXES, available, load, parse_name, sources, split_name,
                                 validate_name)
from ddlib.data.stream import ImageStore

__all__ = ["Dataset", "DatasetEntry", "ImageStore", "Layout", "DataNotFoundError", "UnreadableDataError",
           "DataLoadWarning", "DATASETS", "PATH_PREFIXES", "STREAM_ABOVE_BYTES", "DEBIAN_FASHION_MNIST",
           "FASHION_CLASSES", "CIFAR10_CLASSES", "IMAGE_SUFFIXES", "ARCHIVE_SUFFIXES", "load", "load_tree",
           "available", "validate_name", "split_name", "parse_name", "sources", "subsample", "positions_in",
           "to_float", "data_root", "fashion_mnist_locations", "make_synthetic_patterns",
           "archives", "builtin", "cifar", "core", "download", "folder", "idx", "images", "imagenet", "registry",
           "stream"]
