"""``mrtrans export``: one direction's generator as ONNX or TorchScript, with its preprocessing written beside it.

A hospital pipeline can then run the model without mrtrans (onnxruntime, libtorch). The network maps a
batch of axial slices to translated slices; everything around it (reorientation, resampling, brain
mask, percentile normalisation, field fitting, and the inverse steps) is what ``preprocessing.json``
spells out, with the values of this checkpoint. mrtrans' own ``translate`` does exactly those steps.

Output folder::

    OUT/generator.onnx  (or generator.torchscript.pt)   input "image" (N, 1, S, S) float32 -> "translation"
    OUT/preprocessing.json                                the recipe, the direction, versions

``--format monai-bundle`` writes a MONAI bundle instead (:func:`write_bundle`): ``configs/metadata.json``
(the MONAI bundle schema's fields, filled from the checkpoint: direction, the network's input and output with
their range and size, spacing, intensity recipe, references, license), ``configs/inference.json`` with
``network_def`` (mrtrans' generator class and its arguments: MONAI's ``verify_net_in_out`` and ``ckpt_export`` run on
it) and the whole-volume pipeline (LoadImage -> ``mrtrans.monai.Translate`` -> SaveImage, run by ``python -m
monai.bundle run``), ``models/model.pt`` (the generator's state dict, what ``network_def`` loads) and
``models/mrtrans.pt`` (the direction's generator in mrtrans' checkpoint format, with its preprocessing; what the
pipeline loads). The pipeline is mrtrans' own, so it needs mrtrans installed and gives what ``mrtrans translate``
gives, bit for bit; ``network_def`` alone is the bare 2D network for MONAI's tools and other pipelines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mrtrans import __version__
from mrtrans.checkpoint import (
    load_checkpoint,
    model_payload,
    model_record,
    resolve_checkpoint,
    save_checkpoint,
)
from mrtrans.config import ExportFormat, to_dict
from mrtrans.domain import display_name
from mrtrans.errors import MrtransError
from mrtrans.inference.translate import load_translator
from mrtrans.io import sha256_file
from mrtrans.models import generator_spec
from mrtrans.outputs import OutputKind, atomic_dir

# The MONAI bundle specification's metadata schema (MONAI >= 1.4).
MONAI_META_SCHEMA = (
    "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json"
)


FILES = {ExportFormat.onnx: "generator.onnx", ExportFormat.torchscript: "generator.torchscript.pt"}
OPSET = 17


def preprocessing_record(translator: Any, fmt: ExportFormat, checkpoint: Path) -> dict[str, Any]:
    """What a pipeline must do around the exported network to reproduce ``mrtrans translate``."""
    norm = translator.normalization
    lo, hi = norm.range
    size = norm.image_size
    spacing = norm.in_plane_spacing
    steps = [
        "reorient the volume to RAS (a permutation/flip of voxel axes; nibabel as_closest_canonical); axial slices "
        "are array[:, :, k], each (x, y) with x the right-left axis",
        "brain mask: the non-zero voxels of the skull-stripped volume (background must be 0), or your own mask",
        (
            f"resample in-plane to {spacing[0]:g} x {spacing[1]:g} mm when the volume's voxel size differs by more "
            "than 1% "
            "(mrtrans interpolates brain*mask / mask bilinearly; new mask where the resampled mask > 0.5)"
        )
        if spacing
        else "in-plane spacing: not recorded by this model (mrtrans < 0.2); use the training data's (BraTS: 1 mm)",
    ]
    if norm.bias_field == "n4":
        steps.append(
            "N4 bias-field correction inside the brain mask (SimpleITK N4BiasFieldCorrectionImageFilter, "
            "fitted on the volume shrunk by 4, 50 iterations x 4 levels)"
        )
    steps += [
        f"inside the brain: clip to the brain's {norm.lower_percentile}th and {norm.upper_percentile}th "
        "percentiles "
        f"and scale linearly to [{lo:g}, {hi:g}]; outside the brain: {lo:g}",
        f"centre pad/crop each axial slice to {size} x {size} (pad value {lo:g}; the brain must fit)",
        f"run the network on the slices that contain brain, as float32 (N, 1, {size}, {size})",
        f"map the output from [{lo:g}, {hi:g}] to [0, 1], undo the pad/crop, resample back onto the input grid, set 0 "
        "outside the brain, reorient back",
    ]
    return {
        "format": fmt.value,
        "file": FILES[fmt],
        "direction": {"source": translator.direction.source, "target": translator.direction.target},
        "model_kind": translator.kind,
        "input": {"name": "image", "shape": ["N", 1, size, size], "dtype": "float32", "range": [lo, hi]},
        "output": {"name": "translation", "shape": ["N", 1, size, size], "dtype": "float32", "range": [lo, hi]},
        "spacing_mm": None if spacing is None else list(spacing),
        "field_size": size,
        "normalization": norm.to_record(),
        "steps": steps,
        "checkpoint": {"path": str(checkpoint), "sha256": sha256_file(checkpoint)},
        "mrtrans_version": __version__,
        "torch": torch.__version__,
    }


class FixedField(torch.nn.Module):
    """The generator behind a check of the slice size it was trained for: the networks would run on another
    size (63 x 63 in, 64 x 64 out) and give a translation of the wrong grid without a word."""

    def __init__(self, generator: torch.nn.Module, size: int) -> None:
        super().__init__()
        self.generator = generator
        self.size = size

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[1] != 1 or image.shape[2] != self.size or image.shape[3] != self.size:
            raise ValueError(
                f"expected slices of shape (N, 1, {self.size}, {self.size}); pad or crop each slice to "
                f"{self.size} x {self.size} as preprocessing.json says"
            )
        return self.generator(image)


def export_model(
    model: str | Path,
    out: str | Path,
    fmt: str | ExportFormat = ExportFormat.onnx,
    direction: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the generator of ``direction`` (default the model's own) to ``out`` (see module docstring).

    Raises:
        MrtransError: not a model, an unknown format, or ONNX export without the ``onnx`` package.
    """
    try:
        fmt = ExportFormat(fmt)
    except ValueError:
        raise MrtransError(f"--format {fmt!r}: use {', '.join(f.value for f in ExportFormat)}") from None
    checkpoint = resolve_checkpoint(model)
    translator = load_translator(checkpoint, direction, device="cpu")
    if fmt is ExportFormat.monai_bundle:
        with atomic_dir(out, OutputKind.export, overwrite=overwrite, inputs=[checkpoint]) as tmp:
            write_bundle(tmp, checkpoint, translator)
        return Path(out)
    size = translator.normalization.image_size
    example = torch.zeros(1, 1, size, size)
    generator = translator.generator.eval()
    with atomic_dir(out, OutputKind.export, overwrite=overwrite, inputs=[checkpoint]) as tmp:
        target = tmp / FILES[fmt]
        if fmt is ExportFormat.torchscript:
            with torch.no_grad():
                torch.jit.script(FixedField(torch.jit.trace(generator, example), size)).save(str(target))
        else:
            try:
                import onnx  # noqa: F401  (the exporter needs it)
            except ImportError:
                raise MrtransError(
                    "ONNX export needs the onnx package: pip install 'mrtrans[export]' (or use --format torchscript)"
                ) from None
            dynamic = {0: "batch"}  # height and width fixed: ONNX Runtime refuses slices of another size
            with torch.no_grad():
                torch.onnx.export(
                    generator,
                    (example,),
                    str(target),
                    input_names=["image"],
                    output_names=["translation"],
                    dynamic_axes={"image": dynamic, "translation": dynamic},
                    opset_version=OPSET,
                    dynamo=False,
                )
        record = preprocessing_record(translator, fmt, checkpoint)
        (tmp / "preprocessing.json").write_text(json.dumps(record, indent=2))
    return Path(out)


REFERENCES = [
    "Zhang, Pfister, Li. Harmonic Unpaired Image-to-image Translation. ICLR 2019.",
    "Menze et al. The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS). IEEE TMI 34(10), 2015.",
    "Bakas et al. Advancing The Cancer Genome Atlas glioma MRI collections with expert segmentation labels and "
    "radiomic features. Scientific Data 4, 2017.",
]


def write_bundle(folder: Path, checkpoint: Path, translator: Any) -> None:
    """A MONAI bundle of ``translator``'s direction in ``folder`` (see the module docstring)."""
    ckpt = load_checkpoint(checkpoint)
    record = model_record(ckpt, checkpoint)
    d = translator.direction
    payload = model_payload(
        record.kind,
        d.source,
        d.target,
        to_dict(record.config),
        record.normalization,
        {"gen_s2t": ckpt["models"][record.translators[d.name]]},
        method=record.method,
        translators={d.name: "gen_s2t"},
    )
    payload |= {"selection": ckpt.get("selection"), "state": ckpt.get("state"), "exported_from": str(checkpoint)}
    (folder / "models").mkdir()
    (folder / "configs").mkdir()
    save_checkpoint(payload, folder / "models" / "mrtrans.pt")
    torch.save(dict(translator.generator.state_dict()), folder / "models" / "model.pt")  # tensors only
    network_def = generator_spec(record.config.generator)
    metadata = _bundle_metadata(checkpoint, translator)
    (folder / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    inference = _bundle_inference(network_def, d.target)
    (folder / "configs" / "inference.json").write_text(json.dumps(inference, indent=2) + "\n")
    (folder / "README.md").write_text(_bundle_readme(metadata))


def _bundle_metadata(checkpoint: Path, translator: Any) -> dict[str, Any]:
    """configs/metadata.json of a bundle of ``translator`` (MONAI's metadata schema, and mrtrans' own record)."""
    import monai
    import numpy as np

    d = translator.direction
    norm = translator.normalization
    lo, hi = norm.range
    sequence = {m: display_name(m) for m in (d.source, d.target)}
    size = norm.image_size
    spacing = None if norm.spacing is None else list(norm.spacing)
    metadata = {
        "schema": MONAI_META_SCHEMA,
        "version": "0.1.0",
        "changelog": {"0.1.0": f"exported by mrtrans {__version__} from {checkpoint.name}"},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "required_packages_version": {"mrtrans": __version__, "nibabel": _version("nibabel")},
        "name": f"mrtrans {d.name} ({translator.kind})",
        "task": f"Synthesize the {sequence[d.target]} sequence of a skull-stripped brain MRI from its "
        f"{sequence[d.source]} (unpaired translation); the output is synthetic",
        "description": f"{translator.kind} generator trained by mrtrans ({translator.chosen}). Whole volumes on their "
        "own grid: reoriented to RAS, resampled in-plane to the training spacing, brain-percentile normalised, "
        "translated slice by slice, and put back on the input's grid (mrtrans.monai.Translate).",
        "authors": "mrtrans (the user who trained this model)",
        "copyright": "Trained by the user of mrtrans; see the training data's license",
        "license": "the code: Apache-2.0 (mrtrans); the weights: as the data they were trained on allows",
        "references": REFERENCES,
        "intended_use": "Research only; not for diagnosis. Every output is synthetic.",
        # The network of network_def: one axial slice in the model range in, its translation out (the pipeline of
        # inference.json wraps it for whole volumes).
        "network_data_format": {
            "inputs": {"image": _slice_format(sequence[d.source], [lo, hi], size, spacing)},
            "outputs": {"pred": _slice_format(f"synthetic {sequence[d.target]}", [lo, hi], size, spacing)},
        },
        "pipeline_data_format": {  # what configs/inference.json reads and writes
            "inputs": {"image": _volume_format(sequence[d.source], [])},
            "outputs": {"pred": _volume_format(f"synthetic {sequence[d.target]}", [0, 1])},
        },
        "mrtrans": {
            "direction": d.name,
            "model_kind": translator.kind,
            "checkpoint_chosen": translator.chosen,
            "spacing_mm": spacing,
            "image_size": size,
            "intensity": {
                "method": norm.method,
                "lower_percentile": norm.lower_percentile,
                "upper_percentile": norm.upper_percentile,
                "model_range": [lo, hi],
                "output": "normalised target intensities in [0, 1], 0 outside the brain",
            },
        },
    }
    return metadata


def _bundle_inference(network_def: dict[str, Any], target: str) -> dict[str, Any]:
    """configs/inference.json: the whole-volume pipeline (mrtrans.monai.Translate) and the bare network."""
    return {
        "imports": ["$import mrtrans.monai"],
        "bundle_root": ".",
        "device": "$'cuda' if torch.cuda.is_available() else 'cpu'",
        "network_def": network_def,
        "ckpt_path": "$@bundle_root + '/models/mrtrans.pt'",
        "input_file": "",
        "output_dir": "$@bundle_root + '/eval'",
        "output_postfix": target,
        "loader": {"_target_": "LoadImage", "image_only": True},
        "translate": {"_target_": "mrtrans.monai.Translate", "model": "@ckpt_path", "device": "@device"},
        "saver": {
            "_target_": "SaveImage",
            "writer": "mrtrans.monai.NiftiWriter",  # a dotted path: NibabelWriter that keeps the source's units (mm)
            "output_dir": "@output_dir",
            "output_postfix": "@output_postfix",
            "output_dtype": "$np.float32",
            "separate_folder": False,
            "resample": False,
        },
        "run": ["$@saver(@translate(@loader(@input_file)))"],
    }


def _bundle_readme(metadata: dict[str, Any]) -> str:
    """README.md of a bundle: how to run it, and what MONAI's own tools can do with it."""
    return (
        f"# {metadata['name']}\n\n{metadata['task']}.\n\n"
        "Install mrtrans from its repository (it is on no package index), then run the whole-volume pipeline:\n\n"
        "```bash\npip install 'git+https://github.com/mrtrans/mrtrans'   # or: pip install -e <your checkout>\n"
        "python -m monai.bundle run --config_file configs/inference.json --bundle_root . "
        "--input_file scan.nii.gz --output_dir out\n```\n\n"
        "That pipeline (`mrtrans.monai.Translate`) gives what `mrtrans translate` gives, bit for bit: use it for "
        "results. `network_def` in configs/inference.json is the bare 2D network (one axial slice in, "
        "`models/model.pt` its weights) for MONAI's own tools, which need a network:\n\n```bash\n"
        "python -m monai.bundle verify_net_in_out network_def --meta_file configs/metadata.json "
        "--config_file configs/inference.json\n"
        "python -m monai.bundle ckpt_export network_def --filepath models/model.ts --ckpt_file models/model.pt "
        "--meta_file configs/metadata.json --config_file configs/inference.json\n```\n\n"
        "`verify_metadata` checks configs/metadata.json against the schema it names (it downloads the schema). "
        "Written by `mrtrans export --format monai-bundle`.\n"
    )


def _slice_format(channel: str, value_range: list[float], size: int, spacing: Any) -> dict[str, Any]:
    """A bundle's ``network_data_format`` entry for the network's input or output: one axial slice."""
    entry = {
        "type": "image",
        "format": "magnitude",
        "modality": "MR",
        "num_channels": 1,
        "spatial_shape": [size, size],
        "dtype": "float32",
        "value_range": value_range,
        "is_patch_data": False,
        "channel_def": {"0": channel},
    }
    if spacing is not None:
        entry["spacing_mm"] = [float(spacing[0]), float(spacing[1])]  # in-plane, RAS x and y
    return entry


def _volume_format(channel: str, value_range: list[float]) -> dict[str, Any]:
    """A bundle's ``network_data_format`` entry for one whole MR volume of one channel."""
    return {
        "type": "image",
        "format": "magnitude",
        "modality": "MR",
        "num_channels": 1,
        "spatial_shape": ["*", "*", "*"],
        "dtype": "float32",
        "value_range": value_range,
        "is_patch_data": False,
        "channel_def": {"0": channel},
    }


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
