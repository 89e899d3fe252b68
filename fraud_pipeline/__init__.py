"""fraud-pipeline: a Pulumi component library for real-time card-fraud detection on AWS.

Import `FraudPipeline` with `FraudPipelineArgs(settings=PipelineSettings(...))`
into any Pulumi Python program; the repo's own `__main__.py` does exactly that
from the stack's config.
"""

from .pipeline import FraudPipeline, FraudPipelineArgs
from .settings import PipelineSettings, SettingsError

__all__ = ["FraudPipeline", "FraudPipelineArgs", "PipelineSettings", "SettingsError"]
