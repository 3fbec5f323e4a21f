import pytest
import torch

from mrtrans.checkpoint import load_checkpoint, save_checkpoint
from mrtrans.errors import MrtransError


class Evil:
    """Unpickling this object would create a file: a stand-in for code execution."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoint_with_a_pickle_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"format": "mrtrans-checkpoint", "models": {}, "payload": Evil(str(marker))}, tmp_path / "evil.pt")
    with pytest.raises(MrtransError, match="refused"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


def test_checkpoint_round_trip_and_foreign_files(tmp_path):
    save_checkpoint({"models": {"w": torch.ones(2)}, "step": 3}, tmp_path / "c.pt")
    payload = load_checkpoint(tmp_path / "c.pt")
    assert payload["step"] == 3 and torch.equal(payload["models"]["w"], torch.ones(2))
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(MrtransError, match="not an mrtrans checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(MrtransError, match="cannot read"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(MrtransError, match="no checkpoints/last.pt"):
        load_checkpoint(tmp_path)


def test_a_checkpoint_of_mrtrans_before_0_4_is_migrated_when_read(tmp_path):
    """No ``translators`` and no ``method`` (a config that says ``harmonicgan``): read as today's format, in one
    function (migrate_checkpoint), so translate finds both generators."""
    from mrtrans.checkpoint import is_translation_checkpoint
    from mrtrans.inference.translate import load_translator

    from helpers import make_checkpoint

    path = make_checkpoint(tmp_path / "new.pt")
    old = torch.load(path, weights_only=True)
    del old["translators"], old["method"]
    old["config"]["method"] = "harmonicgan"
    torch.save(old, tmp_path / "old.pt")
    ckpt = load_checkpoint(tmp_path / "old.pt")
    assert ckpt["translators"] == {"flair2t1": "gen_s2t", "t12flair": "gen_t2s"} and ckpt["method"] == "cycle"
    assert load_translator(tmp_path / "old.pt", "t12flair", device="cpu").direction.name == "t12flair"
    save_checkpoint({"kind": "detector", "models": {}}, tmp_path / "detector.pt")  # not a translation model
    assert not is_translation_checkpoint(load_checkpoint(tmp_path / "detector.pt"))


def test_model_record_is_the_checkpoint_s_typed_and_checked_description(tmp_path):
    from mrtrans.checkpoint import ModelRecord, model_record
    from mrtrans.config import TrainConfig
    from mrtrans.data_prep.normalization import Normalization
    from mrtrans.domain import Direction

    from helpers import make_checkpoint

    path = make_checkpoint(tmp_path / "m.pt", image_size=64)
    ckpt = load_checkpoint(path)
    record = model_record(ckpt, path)
    assert isinstance(record, ModelRecord) and record.direction == Direction("flair", "t1")
    assert isinstance(record.config, TrainConfig) and isinstance(record.normalization, Normalization)
    assert record.translators == {"flair2t1": "gen_s2t", "t12flair": "gen_t2s"}
    assert record.normalization.image_size == 64
    del ckpt["models"]["gen_t2s"]
    with pytest.raises(MrtransError, match="m.pt: 'models' lacks the translators it lists"):
        model_record(ckpt, path)
