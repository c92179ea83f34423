"""Building outputs from specs, and reading the cluster-wide output list.

The cluster-wide list comes from, in order: ``HATOBA_LOG_OUTPUTS`` (inline JSON, or the path
of a YAML/JSON file), else ``HATOBA_HOME/log-outputs.yaml`` (or ``.yml``/``.json``), else
none. Either ``{"outputs": [...]}`` or a bare list; errors name the field by JSON path.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from hatoba.logs.outputs.base import Output
from hatoba.logs.outputs.file import FileWriter
from hatoba.logs.outputs.forward import ForwardClient
from hatoba.logs.outputs.http import HttpClient
from hatoba.model.errors import FieldError, ValidationFailed
from hatoba.model.log_outputs import ClusterOutputs, FileOutput, ForwardOutput, HttpOutput

SUBJECT = "log outputs"
CONFIG_NAMES = ("log-outputs.yaml", "log-outputs.yml", "log-outputs.json")


def build_output(spec: ForwardOutput | HttpOutput | FileOutput) -> Output:
    if isinstance(spec, ForwardOutput):
        return ForwardClient(spec)
    if isinstance(spec, HttpOutput):
        return HttpClient(spec)
    return FileWriter(spec)


def parse_cluster_outputs(data: Any, origin: str = "") -> ClusterOutputs:
    """Validate the cluster-wide list; ``ValidationFailed`` lists every bad field."""
    body = {"outputs": data} if isinstance(data, list) else data
    if body is None:
        return ClusterOutputs()
    try:
        config = ClusterOutputs.model_validate(body)
    except ValidationError as exc:
        errors = [
            FieldError(_path(e["loc"]), e["msg"].removeprefix("Value error, "))
            for e in exc.errors()
        ]
        raise ValidationFailed(errors, f"{SUBJECT} ({origin})" if origin else SUBJECT) from None
    seen: set[str] = set()
    dupes = []
    for i, o in enumerate(config.outputs):
        if o.name in seen:
            dupes.append(FieldError(f"outputs[{i}].name", f"duplicate output {o.name!r}"))
        seen.add(o.name)
    if dupes:
        raise ValidationFailed(dupes, SUBJECT)
    return config


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i == 2 and len(loc) > 2 and part in ("forward", "http", "file"):
            continue  # the discriminated union's tag, not a field
        else:
            out += ("." if out else "") + str(part)
    return out


def _load_text(text: str, origin: str) -> Any:
    try:
        if origin.endswith(".json") or text.lstrip()[:1] in ("[", "{"):
            return json.loads(text)
        return YAML(typ="safe").load(io.StringIO(text))
    except (ValueError, YAMLError) as exc:
        raise ValidationFailed([FieldError("", f"not valid YAML/JSON: {exc}")], origin) from None


def load_cluster_outputs(env_value: str | None, home: Path) -> ClusterOutputs:
    if env_value and env_value.strip():
        text = env_value.strip()
        if text[:1] in ("[", "{"):
            return parse_cluster_outputs(_load_text(text, "HATOBA_LOG_OUTPUTS"), "env")
        path = Path(text).expanduser()
        try:
            content = path.read_text()
        except OSError as exc:
            raise ValidationFailed(
                [FieldError("", f"HATOBA_LOG_OUTPUTS: cannot read {path}: {exc.strerror}")],
                SUBJECT,
            ) from None
        return parse_cluster_outputs(_load_text(content, str(path)), str(path))
    for name in CONFIG_NAMES:
        path = home / name
        if path.is_file():
            return parse_cluster_outputs(_load_text(path.read_text(), str(path)), str(path))
    return ClusterOutputs()
