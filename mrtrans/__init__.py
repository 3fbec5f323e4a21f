"""mrtrans: unpaired MRI modality translation (HarmonicGAN, CycleGAN) for brain-tumor scans."""

__version__ = "0.1.0"
