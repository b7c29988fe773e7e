"""What is particular to each dataset, in one place: a `DatasetSpec` per dataset, registered by
name; a config names one with `dataset=` (docs/datasets.md).

A spec holds the input channels a dataset gives, its classes (label range, the evaluated
classes, whether label 0 is void), how a stored image becomes a model input and back into a
picture, its class colours and names, the class flips whose frequencies mode calibration
reports, the views `gate_tta` may average, how a split is read, its synthetic generator and its
data check. Everything else reads them from here: `utils.config` (derived settings and their
checks), `data.loaders` (the splits), `utils.build` (the model's gate views, the data check,
the synthetic set), `utils.evaluation` and `utils.reports` (normalisation, display, colours).

Built in: 'lidc' (LIDC-IDRI crops, `data.lidc`), 'cityscapes' (multimodal Cityscapes,
`data.cityscapes`) and 'folder' (your own data, `data.folder`); the synthetic sets
(`data.synthetic`) use the names 'lidc' and 'cityscapes'. Another dataset is one
`register_dataset(DatasetSpec(...))` away (tests/test_new_dataset_and_method.py).

Standard library only at import: checking a config reads the specs before torch or numpy is
loaded; the functions below import the modules they read with when they are called.
"""

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Tuple

from data import cityscapes_classes as cityscapes
from data.registry import Registry

Settings = Mapping[str, Any]
# the views that `gate_tta` averages and the gate refit draws from (`models.gating`)
GATE_VIEWS = ("dihedral", "flip_lr")


def one_channel(settings: Settings) -> Tuple[int, Tuple[int, ...]]:
    """Grey images: 1 input channel, and no other count allowed."""
    return 1, (1,)


@dataclass(frozen=True)
class DatasetSpec:
    """Everything particular to one dataset (module docstring).

    Attributes:
        name: the `dataset` setting that selects it.
        build: (data_folder, split, options) -> the split's `Dataset`, yielding (x (C_in, H, W)
            float32, labels (M, H, W) int64, label_probs (M,) float32); options: `label_range`,
            `use_bbpred`, `bbpred_channel`, `input_channels`, `n_classes`.
        channels: settings -> (input channels the data gives, the counts a config may set
            instead; empty: any); may read the data (raises ValueError when it cannot).
        num_classes: C when the config leaves `n_classes` unset; labels lie in [0, C).
        eval_class_ids: the classes the metrics score when the config leaves `eval_class_ids`
            unset; None: every foreground class 1..C-1.
        void: label 0 of the first annotation marks void pixels, which are not scored and
            where `masked_pred` predicts class 0.
        takes_label_range: `label_range` (the training annotations' indices) applies.
        image_mean, image_std: per-channel statistics of the normalisation (a PNG/JPEG is
            scaled to [0, 1], then standardised; npy files hold normalised arrays); None: every
            image is standardised on its own, as the LIDC and folder loaders do.
        label_channel: the input channel holding a label map, drawn as one (Cityscapes: the
            black-box prediction); None: none.
        palette: RGB colours of the `num_classes` classes; None: black/white for two classes,
            else a qualitative colour map.
        class_names: the names of the `num_classes` classes; None: 'class c'.
        flip_classes: (name, class id, flipped id) of the classes whose flips mode calibration
            reports (Cityscapes: five); empty: none.
        gate_views: the views of an image that `gate_tta` averages and the gate refit draws
            from: 'dihedral' (flips and quarter turns: orientation carries no meaning) or
            'flip_lr' (the image and its mirror image: scenes with an up and a down).
        annotations: annotations per image where fixed (LIDC 4 raters, Cityscapes 32 modes).
        synthetic: () -> the generator of a synthetic set of this dataset (`synthetic=name`),
            or None.
        check: (settings, report) -> None: checks the data before a run, `report`s every
            problem and raises ValueError on any; None: the loader's own checks only.
    """

    name: str
    build: Callable[[str, str, Settings], Any]
    channels: Callable[[Settings], Tuple[int, Tuple[int, ...]]] = one_channel
    num_classes: int = 2
    eval_class_ids: Optional[Tuple[int, ...]] = None
    void: bool = False
    takes_label_range: bool = True
    image_mean: Optional[Tuple[float, ...]] = None
    image_std: Optional[Tuple[float, ...]] = None
    label_channel: Optional[int] = None
    palette: Optional[Tuple[Tuple[int, int, int], ...]] = None
    class_names: Optional[Tuple[str, ...]] = None
    flip_classes: Tuple[Tuple[str, int, int], ...] = ()
    gate_views: str = "dihedral"
    annotations: Optional[int] = None
    synthetic: Optional[Callable[[], Callable[..., Any]]] = None
    check: Optional[Callable[[Settings, Callable[[str], None]], None]] = None

    def __post_init__(self):
        if self.gate_views not in GATE_VIEWS:
            raise ValueError(f"dataset {self.name!r}: gate_views must be one of {GATE_VIEWS}, "
                             f"got {self.gate_views!r}")


_SPECS: Registry[DatasetSpec] = Registry("dataset")
register_dataset = _SPECS.register  # a new dataset: register_dataset(DatasetSpec(...))
dataset_names = _SPECS.names
dataset_spec = _SPECS.get


# --- LIDC-IDRI --------------------------------------------------------------------------------

def _lidc_split(data_folder: str, split: str, options: Settings) -> Any:
    from data.lidc import LIDCDataset

    return LIDCDataset(data_folder, split, label_range=options.get("label_range"))


def _lidc_generator() -> Callable[..., Any]:
    from data.synthetic.lidc import make_lidc

    return make_lidc


register_dataset(DatasetSpec(
    name="lidc", build=_lidc_split, num_classes=2, eval_class_ids=(1,), annotations=4,
    synthetic=_lidc_generator))


# --- multimodal Cityscapes ----------------------------------------------------------------------

def _cityscapes_channels(settings: Settings) -> Tuple[int, Tuple[int, ...]]:
    """4 with the black-box prediction (`use_bbpred`), else 3; 4 without it runs a 4-channel
    model whose 4th channel is all zeros."""
    return (4, (4,)) if settings["use_bbpred"] else (3, (3, 4))


def _cityscapes_split(data_folder: str, split: str, options: Settings) -> Any:
    from data.cityscapes import CityscapesDataset  # imports torchvision: only when used

    bbpred_channel, channels = options.get("bbpred_channel"), options.get("input_channels")
    if bbpred_channel is None and channels is not None:
        bbpred_channel = channels == 4
    return CityscapesDataset(data_folder, split, use_bbpred=options.get("use_bbpred", True),
                             bbpred_channel=bbpred_channel)


def _cityscapes_generator() -> Callable[..., Any]:
    from data.synthetic.cityscapes import make_cityscapes

    return make_cityscapes


register_dataset(DatasetSpec(
    name="cityscapes", build=_cityscapes_split, channels=_cityscapes_channels,
    num_classes=cityscapes.NUM_CLASSES, eval_class_ids=cityscapes.EVAL_CLASS_IDS, void=True,
    takes_label_range=False, image_mean=cityscapes.IMAGE_MEAN, image_std=cityscapes.IMAGE_STD,
    label_channel=3, palette=cityscapes.PALETTE, class_names=cityscapes.CLASS_NAMES,
    flip_classes=tuple(zip(cityscapes.FLIP_NAMES, cityscapes.FLIP_CLASSES,
                           cityscapes.FLIPPED_IDS)),
    gate_views="flip_lr", annotations=cityscapes.NUM_MODES, synthetic=_cityscapes_generator))


# --- your own data in the folder layout ---------------------------------------------------------

def _folder_channels(settings: Settings) -> Tuple[int, Tuple[int, ...]]:
    """The channels of data_folder's first image (read only when input_channels is unset)."""
    if settings["input_channels"] is not None:
        return settings["input_channels"], ()
    from data.folder import image_channels

    channels = image_channels(settings["data_folder"])
    if channels is None:
        raise ValueError(f"input_channels: no readable image in data_folder "
                         f"{settings['data_folder']!r} to derive it from; set it in the config")
    return channels, ()


def _folder_split(data_folder: str, split: str, options: Settings) -> Any:
    if options.get("label_range") is not None:
        raise ValueError("label_range selects LIDC annotation indices; with dataset 'folder' the "
                         "raters vary per image, so leave it None")
    from data.folder.dataset import FolderDataset  # imports torchvision: only when used

    return FolderDataset(data_folder, split, input_channels=options.get("input_channels"),
                         n_classes=options.get("n_classes"))


def _check_folder(settings: Settings, report: Callable[[str], None]) -> None:
    """Every problem of data_folder is `report`ed; the first is raised."""
    from data.folder.check import check_folder

    folder, n_classes = settings["data_folder"], settings["n_classes"]
    problems = check_folder(folder, n_classes, settings["input_channels"])
    for line in problems:
        report(line)
    if problems:
        raise ValueError(f"{len(problems)} problem(s) in data_folder {folder}, first: "
                         f"{problems[0]}; all are listed above and by: python -m data.folder "
                         f"check {folder} --n-classes {n_classes}")


register_dataset(DatasetSpec(
    name="folder", build=_folder_split, channels=_folder_channels, takes_label_range=False,
    check=_check_folder))
