"""Your own data: the folder dataset, its checker, the example writer, and zero-weight padding.

A tiny dataset is written with PIL (RGB 13x17 images, 3 classes, 2-5 raters per image); each
checker test breaks one thing in a copy and asserts that the message names the offending file.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from data import build_dataloaders
from data.folder import read_image
from data.folder.check import check_folder
from data.folder.dataset import FolderDataset, pad_annotations
from data.folder.example import write_example

H, W, C = 13, 17, 3
COUNTS = {"train": 6, "val": 3, "test": 3}
RATERS = ["anna", "ben", "chloe", "dev", "eve"]


def write_tiny(root, seed=0):
    """Write the tiny RGB dataset; returns {split: {id: (image uint8, [labels])}}."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, n in COUNTS.items():
        written[split] = {}
        for i in range(n):
            image_id = f"img{i}"
            image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            os.makedirs(root / split / "images", exist_ok=True)
            Image.fromarray(image).save(root / split / "images" / f"{image_id}.png")
            folder = root / split / "annotations" / image_id
            os.makedirs(folder)
            raters = RATERS[: 2 + (i + len(split)) % 4]  # 2..5 raters
            labels = [rng.integers(0, C, (H, W), dtype=np.uint8) for _ in raters]
            for rater, lab in zip(raters, labels):
                Image.fromarray(lab).save(folder / f"{rater}.png")
            written[split][image_id] = (image, labels)
    return written


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny") / "data"
    return root, write_tiny(root)


@pytest.fixture
def broken(tiny, tmp_path):
    """A fresh copy of the tiny dataset to break."""
    root = tmp_path / "data"
    shutil.copytree(tiny[0], root)
    return root


def test_tiny_dataset_is_clean_and_reads_back(tiny):
    root, written = tiny
    assert check_folder(str(root), n_classes=C, input_channels=3) == []
    ds = FolderDataset(str(root), "val", input_channels=3, n_classes=C)
    assert ds.ids == ["img0", "img1", "img2"]
    max_raters = max(len(labels) for _, labels in written["val"].values())
    assert ds.num_annotations == max_raters
    for i, image_id in enumerate(ds.ids):
        image, labels = written["val"][image_id]
        x, y, v = ds[i]
        assert x.shape == (3, H, W) and x.dtype == torch.float32
        assert abs(x.mean().item()) < 1e-5 and abs(x.std(unbiased=False).item() - 1) < 1e-4
        ref = image.transpose(2, 0, 1).astype(np.float32)
        np.testing.assert_allclose(x.numpy(), (ref - ref.mean()) / ref.std(), atol=1e-5)
        M_i = len(labels)
        assert y.shape == (max_raters, H, W) and y.dtype == torch.int64
        np.testing.assert_array_equal(y[:M_i].numpy(), np.stack(labels))
        for j in range(M_i, max_raters):  # padding: copies of the real annotations
            np.testing.assert_array_equal(y[j].numpy(), labels[j % M_i])
        np.testing.assert_allclose(v.numpy(), [1 / M_i] * M_i + [0] * (max_raters - M_i))


def test_loaders_batch_varying_rater_counts(tiny):
    root, written = tiny
    loaders = build_dataloaders("folder", str(root), train_batch_size=3, test_batch_size=2,
                                input_channels=3, n_classes=C, splits=("train", "test"))
    x, y, v = next(iter(loaders["train"]))
    M = max(len(labels) for _, labels in written["train"].values())
    assert x.shape == (3, 3, H, W) and y.shape == (3, M, H, W) and v.shape == (3, M)
    torch.testing.assert_close(v.sum(1), torch.ones(3))
    assert sum(b[0].shape[0] for b in loaders["test"]) == COUNTS["test"]  # last batch kept
    with pytest.raises(ValueError, match="label_range"):
        build_dataloaders("folder", str(root), label_range=[0])


def test_train_augmentation_moves_image_and_labels_together(tiny):
    root, _ = tiny
    plain = FolderDataset(str(root), "train", augment=False)
    aug = FolderDataset(str(root), "train")  # the train split augments by default
    assert FolderDataset(str(root), "val").transform is None
    torch.manual_seed(0)
    x0, y0, v0 = plain[0]
    joint_flips = 0
    for _ in range(20):
        x1, y1, v1 = aug[0]
        torch.testing.assert_close(v1, v0)
        for dims in ((-1,), (-2,), (-1, -2)):  # pure flips: image and labels flipped alike
            if torch.equal(y1, y0.flip(dims)) and torch.allclose(x1, x0.flip(dims)):
                joint_flips += 1
    assert joint_flips > 0


def test_npy_images_channels_last_and_first_read_alike(tmp_path):
    image = np.random.default_rng(0).random((H, W, 3)).astype(np.float32)
    np.save(tmp_path / "hwc.npy", image)
    np.save(tmp_path / "chw.npy", image.transpose(2, 0, 1))
    np.save(tmp_path / "hw.npy", image[..., 0])
    np.testing.assert_array_equal(read_image(str(tmp_path / "hwc.npy")),
                                  read_image(str(tmp_path / "chw.npy")))
    assert read_image(str(tmp_path / "hw.npy")).shape == (1, H, W)


def test_model_takes_odd_sizes(tiny):
    """ceil-mode pooling + upsampling to the skip size: 13x17 passes a 4-level U-Net unchanged."""
    from models.mose import MoSE

    root, _ = tiny
    x, _, _ = next(iter(build_dataloaders("folder", str(root), val_batch_size=2,
                                          splits=("val",))["val"]))
    model = MoSE(3, C, [4, 8, 8, 8], 1, 2, 2, softmax=True, masked_pred=False).eval()
    assert model(x)["pred"].shape == (2, 4, C, H, W)


# --- the checker: one test per problem, each message naming the offending file ---------------


def _only(problems, path):
    """The problems naming `path` (as a string); asserts there is at least one."""
    hits = [p for p in problems if str(path) in p]
    assert hits, f"no problem names {path}: {problems}"
    return hits


def test_missing_annotations(broken):
    shutil.rmtree(broken / "train" / "annotations" / "img1")
    shutil.rmtree(broken / "train" / "annotations" / "img2")
    os.makedirs(broken / "train" / "annotations" / "img2")  # an empty rater folder
    problems = check_folder(str(broken), C, 3)
    assert "missing annotations" in _only(problems, broken / "train/images/img1.png")[0]
    assert "missing annotations" in _only(problems, broken / "train/images/img2.png")[0]
    assert len(problems) == 2
    with pytest.raises(ValueError, match="img1.png: missing annotations.*data.folder check"):
        FolderDataset(str(broken), "train")


def test_annotation_size_differs(broken):
    path = broken / "val" / "annotations" / "img0" / "anna.png"
    Image.fromarray(np.zeros((H + 1, W), np.uint8)).save(path)
    (problem,) = check_folder(str(broken), C, 3)
    assert problem.startswith(str(path)) and "14x17" in problem and "13x17" in problem


def test_label_values_outside_range(broken):
    path = broken / "test" / "annotations" / "img1" / "ben.png"
    Image.fromarray(np.full((H, W), 255, np.uint8)).save(path)
    (problem,) = check_folder(str(broken), C, 3)
    assert problem.startswith(str(path)) and "[255]" in problem and "0/255" in problem
    assert _only(check_folder(str(broken), 2, 3), broken / "train/annotations/img0/anna.png")


def test_unreadable_files(broken):
    image = broken / "train" / "images" / "img3.png"
    annotation = broken / "val" / "annotations" / "img2" / "ben.png"
    image.write_bytes(b"not a png")
    annotation.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    problems = check_folder(str(broken), C, 3)
    assert "unreadable image" in _only(problems, image)[0]
    assert "unreadable annotation" in _only(problems, annotation)[0]
    assert len(problems) == 2


def test_empty_and_missing_splits(broken):
    shutil.rmtree(broken / "val" / "images")
    os.makedirs(broken / "val" / "images")
    shutil.rmtree(broken / "test")
    problems = check_folder(str(broken), C, 3)
    assert any(p.startswith(str(broken / "val" / "images")) and "empty split" in p
               for p in problems)
    assert f"{broken / 'test'}: missing split folder" in problems
    assert check_folder(str(broken / "nowhere"), C)[0].startswith(str(broken / "nowhere"))


def test_wrong_channel_count(broken):
    path = broken / "train" / "images" / "img4.png"
    Image.fromarray(np.zeros((H, W), np.uint8)).save(path)  # grey in an RGB dataset
    (problem,) = check_folder(str(broken), C, 3)
    assert problem.startswith(str(path)) and "1 channel(s), expected 3" in problem
    (problem,) = check_folder(str(broken), C, None)  # derived from the first image
    assert problem.startswith(str(path))
    with pytest.raises(ValueError, match="img4.png: 1 channel"):
        FolderDataset(str(broken), "train", input_channels=3)[4]


def test_annotation_not_a_label_map(broken):
    path = broken / "train" / "annotations" / "img0" / "ben.png"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(path)
    (problem,) = check_folder(str(broken), C, 3)
    assert problem.startswith(str(path)) and "mode RGB" in problem


def test_mixed_sizes_within_a_split(broken):
    image = broken / "test" / "images" / "img2.png"
    Image.fromarray(np.zeros((H, W + 2, 3), np.uint8)).save(image)
    for name in os.listdir(broken / "test" / "annotations" / "img2"):
        Image.fromarray(np.zeros((H, W + 2), np.uint8)).save(
            broken / "test" / "annotations" / "img2" / name)
    (problem,) = check_folder(str(broken), C, 3)
    assert problem.startswith(str(image)) and "13x19" in problem and "usual 13x17" in problem


def test_stray_duplicate_and_orphan_files(broken):
    stray = broken / "train" / "images" / "notes.txt"
    stray.write_text("x")
    duplicate = broken / "train" / "images" / "img0.npy"
    np.save(duplicate, np.zeros((H, W, 3), np.float32))
    orphan = broken / "val" / "annotations" / "img9"
    shutil.copytree(broken / "val" / "annotations" / "img0", orphan)
    (broken / "train" / "images" / ".DS_Store").write_text("ignored")
    problems = check_folder(str(broken), C, 3)
    assert "not an image file" in _only(problems, stray)[0]
    assert "duplicate id" in _only(problems, duplicate)[0]
    assert "does not exist" in _only(problems, orphan)[0]
    assert len(problems) == 3


def test_cli_lists_every_problem_and_exits_1(broken, tiny):
    run = [sys.executable, "-m", "data.folder", "check"]
    ok = subprocess.run(run + [str(tiny[0]), "--n-classes", "3", "--input-channels", "3"],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "OK" in ok.stdout and "2-5 raters" in ok.stdout
    bad = [broken / "train/annotations/img0/anna.png", broken / "val/annotations/img1/ben.png"]
    for path in bad:
        Image.fromarray(np.full((H, W), 7, np.uint8)).save(path)
    out = subprocess.run(run + [str(broken), "--n-classes", "3"], capture_output=True, text=True)
    assert out.returncode == 1
    assert all(str(path) in out.stdout for path in bad) and "2 problem(s)" in out.stdout


# --- the example writer ------------------------------------------------------------------------


def test_example_dataset_is_clean_and_repeatable(tmp_path):
    counts = write_example(str(tmp_path / "a"), 12, 3, 3, size=16, seed=1)
    write_example(str(tmp_path / "b"), 12, 3, 3, size=16, seed=1)
    assert counts == {"train": 12, "val": 3, "test": 3}
    assert check_folder(str(tmp_path / "a"), n_classes=2, input_channels=1) == []
    ds = FolderDataset(str(tmp_path / "a"), "train", input_channels=1, n_classes=2)
    raters = [len(item.annotations) for item in ds.items]
    assert min(raters) >= 2 and max(raters) <= 5 and len(set(raters)) > 1
    for sub in ("train/images/case_0003.png", "val/annotations/case_0001"):
        a, b = tmp_path / "a" / sub, tmp_path / "b" / sub
        if a.is_dir():
            assert sorted(os.listdir(a)) == sorted(os.listdir(b))
        else:
            assert a.read_bytes() == b.read_bytes()
    with pytest.raises(ValueError, match="already exists"):
        write_example(str(tmp_path / "a"), 2, 1, 1, size=16)


# --- zero-weight padding in the loss and the metrics -------------------------------------------


def _pad(gt, size):
    """Pad (B, M, H, W) annotations to `size` as the dataset does; returns labels, weights."""
    padded = [pad_annotations(g, size) for g in gt]
    return torch.stack([p[0] for p in padded]), torch.stack([p[1] for p in padded])


@pytest.fixture
def annotated():
    g = torch.Generator().manual_seed(0)
    B, N, M, Cl = 3, 8, 4, 3  # N % M == 0: the M-IoU's Hungarian path
    logits = torch.randn(B, N, Cl, 6, 7, generator=g)
    gt = torch.randint(0, Cl, (B, M, 6, 7), generator=g)
    logits[0, 0, 0] = 10.0  # a sample and an annotation without any foreground:
    gt[0, 1] = 0  # undefined multi-class distances
    v = torch.full((B, M), 1 / M)
    gt_pad, v_pad = _pad(gt, 6)
    return logits, gt, v, gt_pad, v_pad


def test_padding_is_harmless_for_ged_and_ece(annotated):
    from utils.evaluation.metrics import StreamingECE, ged_miou
    from utils.labels import hard_labels

    logits, gt, v, gt_pad, v_pad = annotated
    samples = hard_labels(logits.softmax(2))
    for classes, ids in ((3, [1, 2]), (2, None)):
        s, y, yp = samples % classes, gt % classes, gt_pad % classes
        for empty in ("zero", "skip"):
            ged, _ = ged_miou(s, y, None, v, classes, ids, empty_distance=empty)
            ged_p, _ = ged_miou(s, yp, None, v_pad, classes, ids, empty_distance=empty)
            torch.testing.assert_close(ged_p, ged, equal_nan=True)
    eces = []
    for y, w in ((gt, v), (gt_pad, v_pad)):
        ece = StreamingECE(3, [1, 2])
        ece.update(logits.softmax(2), torch.full((3, 8), 1 / 8), y, w)
        eces.append(ece.compute())
    assert eces[0] == pytest.approx(eces[1], abs=1e-12)


def test_padding_is_harmless_for_exact_and_nearest_couplings(annotated):
    from utils.loss.ot_cost import iou_cost
    from utils.loss.ot_coupling import exact_coupling, nearest_coupling

    logits, gt, v, gt_pad, v_pad = annotated
    cost, cost_p = iou_cost(logits.softmax(2), gt), iou_cost(logits.softmax(2), gt_pad)
    for P, P_pad in ((nearest_coupling(cost, v), nearest_coupling(cost_p, v_pad)),
                     (exact_coupling(cost, v, 0.25), exact_coupling(cost_p, v_pad, 0.25))):
        torch.testing.assert_close(P_pad[..., :4], P)
        assert P_pad[..., 4:].abs().max() == 0


# Zero-weight padding annotations are treated as absent by the greedy coupling (no capacity
# used) and by the M-IoU (the Hungarian path stays available).
def test_padding_is_harmless_for_the_greedy_coupling(annotated):
    from utils.loss.ot_cost import iou_cost
    from utils.loss.ot_coupling import greedy_coupling

    logits, gt, v, gt_pad, v_pad = annotated
    cost, cost_p = iou_cost(logits.softmax(2), gt), iou_cost(logits.softmax(2), gt_pad)
    for gamma in (1 / 8, 0.25, 0.5):
        P, P_pad = greedy_coupling(cost, v, gamma), greedy_coupling(cost_p, v_pad, gamma)
        torch.testing.assert_close(P_pad[..., :4], P)


def test_padding_is_harmless_for_the_matched_iou(annotated):
    from utils.evaluation.metrics import ged_miou
    from utils.labels import hard_labels

    logits, gt, v, gt_pad, v_pad = annotated
    samples = hard_labels(logits.softmax(2))
    for classes, ids in ((3, [1, 2]), (2, None)):
        s, y, yp = samples % classes, gt % classes, gt_pad % classes
        for empty in ("zero", "skip"):
            for matching in ("hungarian", "ot"):
                kw = dict(empty_distance=empty, matching=matching)
                _, miou = ged_miou(s, y, None, v, classes, ids, **kw)
                _, miou_p = ged_miou(s, yp, None, v_pad, classes, ids, **kw)
                torch.testing.assert_close(miou_p, miou, equal_nan=True)


def test_baselines_never_draw_a_padding_annotation(annotated):
    from models.prob_unet import draw_annotation

    _, _, _, gt_pad, v_pad = annotated
    index, _ = draw_annotation(gt_pad.repeat(200, 1, 1, 1), v_pad.repeat(200, 1),
                               torch.Generator().manual_seed(0))
    assert index.max() < 4 and len(index.unique()) == 4
