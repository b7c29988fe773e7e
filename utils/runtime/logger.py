"""Logging: one `logging` logger (console + text file), JSON-lines metrics and TensorBoard."""

import json
import logging
import math
import sys
from pathlib import Path
from typing import Any, Dict, Optional

LOGGER_NAME = "mose"
logger = logging.getLogger(LOGGER_NAME)


def setup_logging(log_file: Optional[Path] = None, level: int = logging.INFO) -> logging.Logger:
    """Send the project logger to the console and, if given, to `log_file` (appended).

    Calling it again replaces the handlers, so tests and repeated runs do not duplicate lines.

    Args:
        log_file: text log path, or None for the console only.
        level: logging level.
    Returns:
        The project logger.
    """
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers = [logging.StreamHandler(sys.stdout)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="a"))
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger


def log_to_files(message: str, level: int = logging.ERROR) -> None:
    """Record `message` in the text log files only (the caller reports it on the console)."""
    record = logger.makeRecord(logger.name, level, __file__, 0, message, None, None)
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: Path, obj: Dict[str, Any]) -> None:
    """Write `obj` as indented JSON (NaN as null), creating the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(obj), indent=2) + "\n")


class MetricsWriter:
    """Append records to `metrics.jsonl` and scalars to TensorBoard (if importable).

    Args:
        jsonl_path: the JSON-lines file (appended).
        tb_dir: TensorBoard log folder, or None to skip TensorBoard.
    """

    def __init__(self, jsonl_path: Path, tb_dir: Optional[Path] = None):
        self.jsonl_path = Path(jsonl_path)
        self.jsonl_path.parent.mkdir(parents=True, exist_ok=True)
        self.tb = None
        if tb_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                logger.warning("tensorboard is not installed: TensorBoard scalars are skipped")
            else:
                self.tb = SummaryWriter(log_dir=str(tb_dir))

    def log(self, record: Dict[str, Any]) -> None:
        """Append one record (a flat dict) as a JSON line."""
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(_json_safe(record)) + "\n")

    def scalars(self, values: Dict[str, float], step: int) -> None:
        """Write scalars to TensorBoard, tag -> value, at `step`."""
        if self.tb is None:
            return
        for tag, value in values.items():
            if value is not None and math.isfinite(value):
                self.tb.add_scalar(tag, value, step)
        self.tb.flush()

    def close(self) -> None:
        """Close the TensorBoard writer."""
        if self.tb is not None:
            self.tb.close()


class NullWriter:
    """A `MetricsWriter` that writes nothing (DDP ranks other than 0)."""

    tb = None

    def log(self, record: Dict[str, Any]) -> None:
        """Ignore the record."""

    def scalars(self, values: Dict[str, float], step: int) -> None:
        """Ignore the scalars."""

    def close(self) -> None:
        """Nothing to close."""
