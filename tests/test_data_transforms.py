"""Batched LIDC augmentation: torchvision geometry, image/label alignment, flip/angle statistics."""

import os

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

import data.lidc_augment as T
from data.lidc import LIDCDataset


def test_rotation_equals_torchvision():
    torch.manual_seed(0)
    images = torch.randn(3, 2, 20, 28)
    labels = torch.randint(0, 4, (3, 4, 20, 28), dtype=torch.uint8)
    angles = torch.tensor([7.3, -9.9, 0.4])
    rot_images, rot_labels = T.rotate_batch(images, labels, angles)
    for j, angle in enumerate(angles.tolist()):
        ref_image = TF.rotate(tv_tensors.Image(images[j]), angle,
                              interpolation=InterpolationMode.BILINEAR, fill=0)
        ref_labels = TF.rotate(tv_tensors.Mask(labels[j]), angle, fill=0)
        torch.testing.assert_close(rot_images[j], ref_image.as_subclass(torch.Tensor),
                                   rtol=0, atol=1e-4)
        assert torch.equal(rot_labels[j], ref_labels.as_subclass(torch.Tensor))
        assert rot_labels.dtype == labels.dtype


def quadrant_image(size: int = 16) -> torch.Tensor:
    """(1, size, size) image whose four quadrants hold 1, 2, 3, 4: flips permute them."""
    q = size // 2
    image = torch.zeros(1, size, size)
    for v, (r, c) in enumerate([(0, 0), (0, q), (q, 0), (q, q)], start=1):
        image[:, r:r + q, c:c + q] = v
    return image


def test_flip_and_rotation_statistics(monkeypatch):
    B = 4000
    image = quadrant_image()
    images = image.expand(B, -1, -1, -1).contiguous()  # (B, 1, 16, 16)
    labels = images.to(torch.uint8).expand(-1, 2, -1, -1).contiguous()  # (B, 2, 16, 16)
    seen = []
    rotate = T.rotate_batch
    monkeypatch.setattr(T, "rotate_batch", lambda i, lab, a: (seen.append(a), rotate(i, lab, a))[1])
    out_images, out_labels = T.lidc_train_batch(images, labels, torch.Generator().manual_seed(0))
    # the quadrant centres survive a rotation of at most 10 degrees: they tell the flips
    top_left = out_labels[:, 0, 4, 4]
    hflip = (top_left == 2) | (top_left == 4)
    vflip = (top_left == 3) | (top_left == 4)
    angles = torch.cat(seen)
    tol = 4 * (0.25 / B) ** 0.5  # four standard deviations of a frequency at p = .5
    assert abs(hflip.float().mean() - 0.5) < tol
    assert abs(vflip.float().mean() - 0.5) < tol
    assert abs(len(angles) / B - 0.5) < tol
    assert abs((hflip & vflip).float().mean() - 0.25) < tol  # independent decisions
    assert angles.min() >= -10 and angles.max() <= 10
    assert abs(angles.mean()) < 4 * (100 / 3 / len(angles)) ** 0.5
    assert abs(angles.std() - 10 / 3**0.5) < 0.2  # U(-10, 10)
    # an item is rotated iff its (bilinear) image differs from its flipped original
    flipped = torch.where(hflip[:, None, None, None], images.flip(-1), images)
    flipped = torch.where(vflip[:, None, None, None], flipped.flip(-2), flipped)
    rotated = ((out_images - flipped).abs() > 1e-6).flatten(1).any(1)
    assert rotated.sum() == len(angles)
    # images follow their labels: the same geometry (labels equal the rounded image values
    # except along the quadrant borders, where bilinear values fall between; another item's
    # geometry agrees on about a quarter of the pixels)
    inside = out_images[:, 0] > 0.5
    rounded = out_images[:, 0].round().to(torch.uint8)  # (B, 16, 16)
    assert (out_labels[:, 0] == rounded)[inside].float().mean() > 0.9
    assert (out_labels.roll(1, 0)[:, 0] == rounded)[inside].float().mean() < 0.5


@pytest.fixture
def asymmetric_set(tmp_path):
    yy, xx = np.mgrid[0:32, 0:32]
    mask = ((yy - 12) ** 2 + (xx - 19) ** 2 < 36) | ((yy > 24) & (xx < 8))
    for kind, array in (("images", mask.astype(np.float32) - 0.5),
                        ("labels", np.repeat(mask[..., None], 4, -1).astype(np.uint8))):
        os.makedirs(tmp_path / "train" / kind)
        np.save(tmp_path / "train" / kind / "0.npy", array)
    return str(tmp_path), mask


def test_batched_items_keep_image_and_labels_aligned(asymmetric_set):
    root, mask = asymmetric_set
    ds = LIDCDataset(root, "train")
    torch.manual_seed(0)
    items = ds.__getitems__([0] * 64)
    changed = 0
    for image, labels, probs in items:
        assert image.shape == (1, 32, 32) and image.dtype == torch.float32
        assert labels.dtype == torch.int64 and set(labels.unique().tolist()) <= {0, 1}
        assert (labels == labels[0]).all()
        midpoint = (image.max() + image.min()) / 2
        assert ((image[0] > midpoint) == labels[0].bool()).float().mean() > 0.97
        torch.testing.assert_close(probs, torch.full((4,), 0.25))
        changed += int(not np.array_equal(labels[0].numpy(), mask))
    assert changed > 32
    assert len({lab[0].numpy().tobytes() for _, lab, _ in items}) > 8  # items differ


def test_loader_batch_equals_items_without_augmentation(asymmetric_set):
    root, _ = asymmetric_set
    ds = LIDCDataset(root, "train", augment=False)
    image, labels, _ = ds[0]
    batch = ds.__getitems__([0, 0])
    assert torch.equal(batch[1][0], image) and torch.equal(batch[1][1], labels)
