"""Run configuration: ``*Args`` dataclasses, YAML loading, dotted overrides, validation.

One definition serves as the YAML key, the command-line override and the documentation line:
every field is declared with :func:`arg`, which stores its help text. A config is loaded from a
shipped profile name (``smoke``, ``cpu``, ``gpu``, ``demo``) or a YAML file, which may extend a profile with
``base: cpu``; command-line overrides are dotted keys (``train.lr=3e-2 prompt.tokens=20``).
:func:`validate` reports every problem at once, naming the key, the value and the fix; the
resolved config is saved as JSON beside every output.
"""

from clinprompt.config.args import (
    LR_SEARCH_JUDGES,
    PROFILES,
    STAGES,
    AdaptArgs,
    BackboneArgs,
    BaselineArgs,
    DataArgs,
    DistillArgs,
    ExperimentArgs,
    PromptArgs,
    TeachersArgs,
    TrainArgs,
    arg,
    config_keys,
)
from clinprompt.config.build import ConfigError, to_dict
from clinprompt.config.loading import load_config, save_config
from clinprompt.config.validation import validate

__all__ = [
    "LR_SEARCH_JUDGES",
    "PROFILES",
    "STAGES",
    "AdaptArgs",
    "BackboneArgs",
    "BaselineArgs",
    "ConfigError",
    "DataArgs",
    "DistillArgs",
    "ExperimentArgs",
    "PromptArgs",
    "TeachersArgs",
    "TrainArgs",
    "arg",
    "config_keys",
    "load_config",
    "save_config",
    "to_dict",
    "validate",
]
