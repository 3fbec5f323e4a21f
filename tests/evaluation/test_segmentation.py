"""The second tumor instrument (mrtrans.evaluation.segmentation): a segmenter of the real target sequence."""

import numpy as np
import pytest
import torch

from mrtrans.config import SegmentationConfig
from mrtrans.data_prep.slices import PreparedSlices
from mrtrans.evaluation import audit, presence, segmentation


def test_a_lesion_is_found_when_enough_of_it_is_covered():
    region = np.zeros((1, 16, 16), bool)
    region[0, 4:8, 4:8] = True  # 16 pixels
    rings = presence.lesion_rings(region, region, np.ones_like(region), min_pixels=4, ring_width=2)
    masks = np.zeros_like(region)
    masks[0, 4, 4:6] = True  # 2 of 16 pixels: 12.5%
    assert segmentation.lesions_found(masks, rings, 0.1).tolist() == [True]
    assert segmentation.lesions_found(masks, rings, 0.2).tolist() == [False]
    assert segmentation.lesions_found(np.zeros_like(region), rings, 0.0).tolist() == [False]  # at least one pixel


@pytest.fixture(scope="module")
def test_set(tmp_path_factory):
    """Synthetic subjects as the CPU preset makes them (48 of 64x64x40), 160 training slices per sequence and a test
    set of 60 paired slices (half tumor) of 12 patients."""
    from mrtrans.config import PrepareConfig, SynthConfig
    from mrtrans.data_prep.prepare import prepare_brats
    from mrtrans.synth import write_synthetic_brats

    folder = tmp_path_factory.mktemp("segmentation")
    write_synthetic_brats(
        folder / "brats", SynthConfig(subjects=48, shape=(64, 64, 40), tumor_fraction=0.9, seed=5, tumor_scale=1.6)
    )
    recipe = PrepareConfig(
        train_slices=160,
        test_slices=60,
        test_fraction=0.25,
        image_size=64,
        min_tumor_pixels=10,
        min_brain_fraction=0.15,
    )
    return prepare_brats(folder / "brats", folder / "prepared", recipe) and folder / "prepared"


@pytest.mark.slow  # trains the segmenter
@pytest.mark.parametrize("modality", ["flair", "t1"])
def test_the_segmenter_finds_the_real_lesions_and_not_the_inpainted_ones(test_set, modality):
    """On a synthetic test set: >= 90% of the reference lesions found on the real target (ceiling), < 20% once
    healthy tissue replaces them (floor); the segmenter never saw the test patients."""
    data = PreparedSlices(test_set)
    labels = audit.region_labels(modality, "auto", data.meta.get("layouts"))
    settings = segmentation.segmenter_settings(SegmentationConfig(steps=600))
    masks = audit.region_mask(data.train_seg(modality), labels).astype(np.uint8)
    net = audit.train_detector(data.train(modality), masks, settings, torch.device("cpu"))
    seg, brain = np.asarray(data.test("seg")), np.asarray(data.test("brain"))
    real = np.asarray(data.test(modality), np.float32)
    rings = presence.lesion_rings(audit.region_mask(seg, labels), seg > 0, brain, min_pixels=5, ring_width=4)
    assert len(rings) >= 15

    def found(images):
        return segmentation.lesions_found(audit.detect(net, images, 0.5, torch.device("cpu")), rings, 0.1).mean()

    assert found(real) >= 0.9
    assert found(audit.fill_healthy(real, seg, brain)) < 0.2
