"""What the code knows about playbooks, rendered for people (Markdown) and editors (JSON Schema).

    step_reference(registry)   -> docs/step-types.md          (`redmedic steps --markdown`)
    playbook_schema(registry)  -> schema/playbook.schema.json (`redmedic schema`)

Both are generated from the step types themselves (class docstring, `summary`, `read_only`,
`free_form`) and their pydantic `Args` models (types, defaults, descriptions), so the
reference and the editor's completion cannot drift from what `validate` and `run` accept:
tests compare the committed files with a fresh generation from the built-in step types.

The schema is JSON Schema draft-07, the dialect YAML language servers support best. It is
deliberately a little looser than `validate` where only a host can decide: any argument may
be a Jinja2 template (`"{{ redis_port }}"` for an integer), checked once rendered.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic.json_schema import models_json_schema

from redmedic.steps import StepRegistry, StepType

_STRINGS = {"type": "array", "items": {"type": "string"}}
# The step options every step type takes, with what they do: the single source for the
# reference, the schema's descriptions and the editor's hover text.
STEP_OPTIONS: Mapping[str, tuple[dict[str, Any], str]] = {
    "name": (
        {"type": "string"},
        "What the step does, shown in reports; handlers are notified by it.",
    ),
    "when": (
        {"anyOf": [{"type": "string"}, {"type": "boolean"}, _STRINGS]},
        "Jinja2 expression(s) without {{ }}; the step runs only when all are true.",
    ),
    "register": (
        {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
        "Variable that receives the step's result (rc, stdout, stderr, stdout_lines, failed, "
        "msg, changed, skipped and the step type's facts) for later steps.",
    ),
    "confirm": (
        {"anyOf": [{"type": "boolean"}, {"type": "string"}]},
        "Ask before applying this fix step's changes: true, or the question to ask.",
    ),
    "notify": (
        {"anyOf": [{"type": "string"}, _STRINGS]},
        "Handler name(s) to run once after the fixes when this step changed something.",
    ),
    "tags": (
        {"anyOf": [{"type": "string"}, _STRINGS]},
        "Labels that --tags/--skip-tags select fix steps by.",
    ),
    "sensitive": (
        {"type": "boolean"},
        "Hide the step's output and treat its registered stdout as a secret.",
    ),
    "become": (
        {"type": "boolean"},
        "Run as root through sudo (overrides the playbook's and the host's become).",
    ),
    "expect_stdout": (
        {"type": ["string", "number"]},
        "Text (a template) the output must contain, else the step fails (diagnose, verify).",
    ),
    "expect_rc": (
        {"type": "integer"},
        "Exit code the step must end with (default in verify: 0; in diagnose: any).",
    ),
}

REGISTERED_KEYS = ("rc", "stdout", "stderr", "stdout_lines", "failed", "msg", "changed", "skipped")
_TEMPLATE = {
    "type": "string",
    "pattern": "\\{[{%]",
    "description": "A Jinja2 template, rendered per host and then checked.",
}
_GENERATED = "Generated from the code by `redmedic steps --markdown`; do not edit by hand."


def _phases(step_type: StepType[Any, Any]) -> str:
    if step_type.read_only:
        return "diagnose, fix, handlers, verify"
    return "fix, handlers"


def _cell(text: str) -> str:
    """Text that stays inside one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _default(info: Any) -> str:
    if info.is_required():
        return "required"
    return f"`{info.get_default(call_default_factory=True)!r}`"


def _type_name(annotation: Any) -> str:
    name = getattr(annotation, "__name__", None)
    if name is not None and not getattr(annotation, "__args__", None):
        return str(name)
    return str(annotation).replace("typing.", "")


def _origin(step_type: StepType[Any, Any]) -> str:
    module = type(step_type).__module__
    return "" if module.startswith("redmedic.") else f"Third-party step type (`{module}`).\n\n"


def step_reference(registry: StepRegistry) -> str:
    """The Markdown reference of every step type in `registry` and of the step options."""
    names = sorted(registry)
    out = [
        "# Step types",
        "",
        f"<!-- {_GENERATED} -->",
        "",
        "A step is one mapping with exactly one step type (its arguments below) and any of the",
        "[step options](#step-options). Arguments are Jinja2 templates rendered per host. What",
        "`register:` stores always holds " + ", ".join(f"`{k}`" for k in REGISTERED_KEYS) + ",",
        "plus the facts a step type lists. How to write playbooks:",
        "[writing-playbooks.md](writing-playbooks.md).",
        "",
        "| step type | phases | what it does |",
        "|---|---|---|",
    ]
    out += [
        f"| [`{n}`](#{n}) | {_phases(registry[n])} | {_cell(registry[n].summary)} |" for n in names
    ]
    out += ["", "## Step options", "", "| option | description |", "|---|---|"]
    out += [f"| `{key}` | {_cell(text)} |" for key, (_, text) in STEP_OPTIONS.items()]
    for name in names:
        step_type = registry[name]
        out += ["", f"## {name}", "", step_type.summary, "", _origin(step_type).rstrip("\n")]
        out += [
            f"Phases: {_phases(step_type)}"
            + ("" if step_type.read_only else " (it changes the host)")
            + "."
            + (
                f" Short form: `{name}: VALUE` sets `{step_type.free_form}`."
                if step_type.free_form
                else ""
            ),
            "",
        ]
        doc = type(step_type).__doc__
        if doc:
            out += [inspect.cleandoc(doc), ""]
        fields = step_type.Args.model_fields
        if fields:
            out += ["| argument | type | default | description |", "|---|---|---|---|"]
            out += [
                f"| `{arg}` | `{_cell(_type_name(info.annotation))}` | {_cell(_default(info))} "
                f"| {_cell(info.description or '')} |"
                for arg, info in fields.items()
            ]
        else:
            out.append("No arguments.")
    text = "\n".join(out) + "\n"
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text


def _templatable(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema`, also accepting a Jinja2 template string where it would not take any string."""
    meta: dict[str, Any] = {
        k: v for k, v in schema.items() if k in ("description", "default", "title")
    }
    body = {k: v for k, v in schema.items() if k not in meta}
    if body.get("type") == "array" and isinstance(body.get("items"), dict):
        body["items"] = _templatable(body["items"])
    if "anyOf" in body:
        options = [_templatable(o) if o.get("type") == "array" else o for o in body["anyOf"]]
        if not any(_any_string(o) for o in options):
            options.append({"$ref": "#/$defs/template"})
        return {**meta, "anyOf": options}
    if _any_string(body):
        return {**meta, **body}
    return {**meta, "anyOf": [body, {"$ref": "#/$defs/template"}]}


def _any_string(schema: Mapping[str, Any]) -> bool:
    """Whether `schema` takes every string (so also a template)."""
    return dict(schema) == {"type": "string"}


def _step_def(
    name: str, step_type: StepType[Any, Any], args_ref: Mapping[str, Any]
) -> dict[str, Any]:
    args: list[Mapping[str, Any]] = [args_ref]
    if step_type.free_form:
        args.append({"type": ["string", "number"]})
    if not any(info.is_required() for info in step_type.Args.model_fields.values()):
        args.append({"type": "null"})
    options = {key: {**schema, "description": text} for key, (schema, text) in STEP_OPTIONS.items()}
    return {
        "type": "object",
        "description": f"`{name}`: {step_type.summary}",
        "properties": {
            **options,
            name: {"description": step_type.summary, "anyOf": args},
        },
        "required": [name],
        "additionalProperties": False,
    }


def playbook_schema(registry: StepRegistry) -> dict[str, Any]:
    """JSON Schema (draft-07) of a playbook whose steps use the step types in `registry`."""
    names = sorted(registry)
    models = {registry[n].Args for n in names}
    refs, generated = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/$defs/{model}",
    )
    defs: dict[str, Any] = dict(generated.get("$defs", {}))
    for model in models:
        key = refs[(model, "validation")]["$ref"].rsplit("/", 1)[1]
        model_def = dict(defs[key])
        model_def["properties"] = {
            arg: _templatable(prop) for arg, prop in model_def.get("properties", {}).items()
        }
        defs[key] = model_def
    defs["template"] = _TEMPLATE
    for name in names:
        defs[f"step_{name}"] = _step_def(
            name, registry[name], refs[(registry[name].Args, "validation")]
        )

    def union(which: Iterable[str], description: str) -> dict[str, Any]:
        return {"description": description, "anyOf": [{"$ref": f"#/$defs/step_{n}"} for n in which]}

    defs["step"] = union(names, "A step: one step type with its arguments, and step options.")
    defs["read_only_step"] = union(
        [n for n in names if registry[n].read_only],
        "A step that only reads the host (diagnose and verify cannot change it).",
    )
    defs["handler"] = {
        "description": "A step run after the fixes when a fix step notifies its name.",
        "allOf": [{"$ref": "#/$defs/step"}, {"required": ["name"]}],
    }

    def phase(item: str, description: str) -> dict[str, Any]:
        return {
            "description": description,
            "type": ["array", "null"],
            "items": {"$ref": f"#/$defs/{item}"},
        }

    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "redmedic playbook",
        "description": "Diagnose, fix and verify steps run on each host (redmedic run).",
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "description": "What the playbook is for."},
            "description": {"type": "string", "description": "Longer explanation for readers."},
            "hosts": {
                "type": "string",
                "description": "Group or host pattern from the inventory (default: all).",
            },
            "vars": {
                "type": ["object", "null"],
                "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                "description": "Defaults for variables; the inventory and -e override them.",
            },
            "become": {"type": "boolean", "description": "Run every step through sudo."},
            "diagnose": phase("read_only_step", "Read-only steps; always run, also in --check."),
            "fix": phase("step", "Planned, shown as diffs, gated, then applied."),
            "handlers": phase("handler", "Run once after the fixes when notified by name."),
            "verify": phase(
                "read_only_step", "Must pass after fixes, else this host's fixes are undone."
            ),
        },
        "$defs": defs,
    }


def schema_text(registry: StepRegistry) -> str:
    """The schema as the committed file holds it: stable key order, 2-space indent."""
    return json.dumps(playbook_schema(registry), indent=2, ensure_ascii=False) + "\n"
