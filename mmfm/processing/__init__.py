"""Processors: turn raw text, images, audio, graphs and series into encoder inputs, and save with the model."""

from .feature_extraction_mmfm_audio import MMFMAudioFeatureExtractor
from .graph_processing_mmfm import MMFMGraphProcessor
from .image_processing_mmfm import MMFMImageProcessor
from .processing_mmfm import MMFMProcessor
from .timeseries_processing_mmfm import MMFMTimeSeriesProcessor
from .tokenization import train_tokenizer

__all__ = [
    "MMFMAudioFeatureExtractor",
    "MMFMGraphProcessor",
    "MMFMImageProcessor",
    "MMFMProcessor",
    "MMFMTimeSeriesProcessor",
    "train_tokenizer",
]
