"""Training infrastructure shared by every model: the loop, checkpoints, EMA, schedules,
DDP helpers and logs. Imports ``sweettok.models`` at most; never Kedro."""

from sweettok.training.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_module_weights,
    load_training_state,
    read_checkpoint_config,
    resolve_resume,
    save_checkpoint,
)
from sweettok.training.distributed import init_distributed, is_main_process, select_device
from sweettok.training.ema import EMA, EMAConfig
from sweettok.training.loop import LoopConfig, StepContext, StepOutput, TrainPart, TrainResult, train
from sweettok.training.schedule import OptimizerConfig, ScheduleConfig, build_adamw, build_scheduler

__all__ = [
    "EMA",
    "CheckpointError",
    "EMAConfig",
    "LoopConfig",
    "OptimizerConfig",
    "ScheduleConfig",
    "StepContext",
    "StepOutput",
    "TrainPart",
    "TrainResult",
    "build_adamw",
    "build_scheduler",
    "init_distributed",
    "is_main_process",
    "latest_checkpoint",
    "load_module_weights",
    "load_training_state",
    "read_checkpoint_config",
    "resolve_resume",
    "save_checkpoint",
    "select_device",
    "train",
]
