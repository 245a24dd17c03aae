"""r2v-pipeline: reference-to-video generations from checked-in YAML manifests."""

__version__ = "0.1.0"
