"""The normalisation record: one typed form, read (and migrated) in one place."""

import pytest

from mrtrans.data_prep.normalization import Normalization
from mrtrans.errors import MrtransError

RECORD = {
    "method": "brain percentile clip, linear scale",
    "lower_percentile": 0.5,
    "upper_percentile": 99.5,
    "range": [-1.0, 1.0],
    "background": -1.0,
    "image_size": 64,
    "spacing": [2.0, 2.0, None],
    "bias_field": "n4",
    "orientation": "RAS",
    "array_order": "[slice, x, y]",
    "dtype": "float16",
}


def test_the_record_round_trips_and_reads_typed():
    norm = Normalization.from_record(RECORD)
    assert norm.to_record() == RECORD
    assert (norm.range, norm.low, norm.image_size, norm.in_plane_spacing) == ((-1.0, 1.0), -1.0, 64, (2.0, 2.0))


def test_a_record_of_mrtrans_before_0_2_reads_as_no_spacing_and_no_bias_correction():
    old = {"lower_percentile": 0.5, "upper_percentile": 99.5, "range": [-1, 1], "image_size": 64}
    norm = Normalization.from_record(old)
    assert (norm.spacing, norm.in_plane_spacing, norm.bias_field) == (None, None, None)
    assert norm == Normalization.from_record({**old, "range": [-1.0, 1.0], "image_size": 64.0})  # same recipe


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: r.pop("range"), "m.pt: 'normalization' is incomplete .*KeyError"),
        (lambda r: r.update(image_size="big"), "'normalization' is incomplete .*ValueError"),
        (lambda r: r.update(range=[1.0, -1.0]), r"range \[1.0, -1.0\] is invalid"),
        (lambda r: r.update(image_size=8), "image_size 8 .* is invalid"),
    ],
)
def test_a_damaged_record_is_refused_naming_where_it_came_from(damage, message):
    record = dict(RECORD)
    damage(record)
    with pytest.raises(MrtransError, match=message):
        Normalization.from_record(record, "m.pt")
    with pytest.raises(MrtransError, match="expected a mapping"):
        Normalization.from_record([1, 2], "m.pt")
