"""The typed, validated run configuration: YAML presets plus ``--set key=value`` overrides.

Every field is checked before any Beam work starts; a problem raises ``ConfigError`` whose
message names the field, e.g. ``config field 'explain.batch_size': expected an int >= 1``.

``sections`` holds the dataclasses and the allowed values of their fields, ``validation``
the value checks, and ``loading`` the YAML, dict and override parsing. Import from here.
"""

from pipeline.config.loading import (
    compare_config_from_dict,
    config_from_dict,
    load_config,
    parse_override,
)
from pipeline.config.sections import (
    CORRUPT_SHARD_POLICIES,
    FAIL_ON_CONDITIONS,
    FILLS,
    IMAGE_ENCODINGS,
    MAP_DTYPES,
    RAW_DTYPES,
    RESIZE_METHODS,
    SCALINGS,
    SOURCE_KINDS,
    TARGET_POLICIES,
    CompareConfig,
    ConfigError,
    ExplainConfig,
    FindingsConfig,
    ModelConfig,
    OutputConfig,
    PreprocessConfig,
    RunConfig,
    SanityConfig,
    SourceConfig,
    jsonable,
)
from pipeline.config.validation import validate, validate_compare

__all__ = [
    "CORRUPT_SHARD_POLICIES", "FAIL_ON_CONDITIONS", "FILLS", "IMAGE_ENCODINGS", "MAP_DTYPES",
    "RAW_DTYPES", "RESIZE_METHODS", "SCALINGS", "SOURCE_KINDS", "TARGET_POLICIES",
    "CompareConfig", "ConfigError", "ExplainConfig", "FindingsConfig", "ModelConfig",
    "OutputConfig", "PreprocessConfig", "RunConfig", "SanityConfig", "SourceConfig",
    "compare_config_from_dict", "config_from_dict", "jsonable", "load_config",
    "parse_override", "validate", "validate_compare",
]
