import shutil

import pytest

from mrtrans.data_prep.discovery import Layout, discover_subjects
from mrtrans.errors import MrtransError

from helpers import to_brats2023, to_msd


def test_brats2020_layout_nested_under_hgg_lgg(synth_root, tmp_path):
    subjects = sorted(p for p in synth_root.iterdir() if p.is_dir())
    for i, folder in enumerate(subjects):
        dest = tmp_path / "MICCAI_BraTS2020_TrainingData" / ("HGG" if i % 2 else "LGG") / folder.name
        shutil.copytree(folder, dest)
    report = discover_subjects(tmp_path)
    assert len(report.subjects) == len(subjects)
    assert {s.layout for s in report.subjects} == {Layout.brats2020}
    assert set(report.subjects[0].files) == {"flair", "t1", "t1ce", "t2", "seg"}


def test_brats2023_aliases(synth_root, tmp_path):
    report = discover_subjects(to_brats2023(synth_root, tmp_path))
    assert {s.layout for s in report.subjects} == {Layout.brats2023}
    s = report.subjects[0]
    assert s.files["flair"].name.endswith("-t2f.nii.gz") and s.files["t1"].name.endswith("-t1n.nii.gz")


def test_msd_layout_channels(synth_root, tmp_path):
    report = discover_subjects(to_msd(synth_root, tmp_path))
    assert len(report.subjects) == 8
    s = report.subjects[0]
    assert s.layout is Layout.msd and s.channels == {"flair": 0, "t1": 1, "t1ce": 2, "t2": 3}
    assert s.files["seg"].parent.name == "labelsTr"


def test_missing_seg_is_reported_not_fatal(synth_root, tmp_path):
    root = shutil.copytree(synth_root, tmp_path / "d")
    victim = sorted(p for p in root.iterdir() if p.is_dir())[0]
    (victim / f"{victim.name}_seg.nii.gz").unlink()
    report = discover_subjects(root)
    assert victim.name not in [s.subject_id for s in report.subjects]
    assert report.skipped == [(victim.name, "no segmentation file (<ID>_seg.nii.gz or <ID>-seg.nii.gz)")]
    assert "skipped" in report.summary()


def test_nothing_found_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(MrtransError, match="no BraTS subjects found"):
        discover_subjects(tmp_path)
    with pytest.raises(MrtransError, match="not a folder"):
        discover_subjects(tmp_path / "nope")


def test_subject_of_strips_modality_suffixes():
    from mrtrans.data_prep.discovery import subject_of

    assert subject_of("a/Brats18_2013_23_1_t1ce.nii.gz") == "Brats18_2013_23_1"
    assert subject_of("BraTS-GLI-00001-000-t2f.nii.gz") == "BraTS-GLI-00001-000"
    assert subject_of("scan.nii") == "scan"


def test_linked_subject_folders_are_found_and_a_link_loop_ends(synth_root, tmp_path):
    split = tmp_path / "train_split"  # a split folder made of links into one data store
    split.mkdir()
    subjects = sorted(p for p in synth_root.iterdir() if p.is_dir())[:4]
    for folder in subjects:
        (split / folder.name).symlink_to(folder, target_is_directory=True)
    (split / "loop").symlink_to(split, target_is_directory=True)
    report = discover_subjects(split)
    assert [s.subject_id for s in report.subjects] == [f.name for f in subjects]


def test_an_unreadable_subject_folder_is_reported_not_dropped(synth_root, tmp_path, monkeypatch):
    import os

    root = shutil.copytree(synth_root, tmp_path / "d")
    victim = sorted(p for p in root.iterdir() if p.is_dir())[0]
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(victim):  # as chmod 000 would (tests may run as root, which ignores modes)
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = discover_subjects(root)
    assert victim.name not in [s.subject_id for s in report.subjects]
    assert (str(victim), "cannot read this folder (Permission denied); fix its permissions") in report.skipped


def test_every_layout_is_one_registry_entry_naming_every_sequence():
    """A layout names each sequence (a folder layout by file suffix, a 4D one by channel) and its core labels lie
    among its seg labels; a subject's layout follows from the suffixes only one layout uses."""
    from mrtrans.data_prep.discovery import LAYOUTS, SEG, layout_of
    from mrtrans.domain import Modality

    assert set(LAYOUTS) == set(Layout)
    for layout, spec in LAYOUTS.items():
        named = set(spec.names) - {SEG} if spec.names else set(spec.channels)
        assert named == {m.value for m in Modality}, layout
        assert set(spec.core_labels) < set(spec.seg_labels) and spec.seg_labels[0] == 0
    assert layout_of(["t2f", "seg"]) is Layout.brats2023 and layout_of(["flair", "seg"]) is Layout.brats2020
    assert layout_of(["seg"]) is Layout.brats2020  # only a suffix every layout shares: the first layout
