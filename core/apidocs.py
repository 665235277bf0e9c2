"""``/docs``: the OpenAPI document as one self-contained HTML page, rendered on the server.

No script and nothing fetched from a CDN (air-gapped sites read it too): each
operation is a ``<details>`` with its parameters and the fields of its body,
and every schema has an anchor that the types link to.
"""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1em 2em;color:#1d2330}
h1{margin-bottom:0}h2{border-bottom:1px solid #ccd;margin-top:2em}code{font-size:14px}
details{border:1px solid #dde;border-radius:6px;margin:.4em 0;padding:.3em .8em}
summary{cursor:pointer}.m{display:inline-block;width:4.5em;font-weight:600;font-family:monospace}
.get{color:#1769aa}.post{color:#2e7d32}.put,.patch{color:#9a6700}.delete{color:#b3261e}
table{border-collapse:collapse;margin:.4em 0 .8em;width:100%}td,th{border-bottom:1px solid #eef;padding:3px 8px;
text-align:left;vertical-align:top}th{font-weight:600;background:#f6f7fb}.req{color:#b3261e}
"""


def _type(schema: dict[str, Any]) -> str:
    """A schema's type as HTML: links for references, ``a | b`` for unions, ``array of x``."""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f'<a href="#schema-{escape(name)}">{escape(name)}</a>'
    if "enum" in schema:
        return " | ".join(f"<code>{escape(repr(v))}</code>" for v in schema["enum"])
    if "const" in schema:
        return f"<code>{escape(repr(schema['const']))}</code>"
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return " | ".join(_type(s) for s in schema[key])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {_type(schema.get('items') or {})}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {_type(schema['additionalProperties'])}"
    if isinstance(kind, list):
        return " | ".join(escape(str(k)) for k in kind)
    return escape(str(kind or "any"))


def _limits(schema: dict[str, Any]) -> str:
    names = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "maxItems")
    found = [f"{n} {schema[n]}" for n in names if n in schema]
    if "default" in schema:
        found.append(f"default <code>{escape(repr(schema['default']))}</code>")
    return "; ".join(found)


def _fields(schema: dict[str, Any]) -> str:
    properties: dict[str, Any] = schema.get("properties") or {}
    if not properties:
        return f"<p>{_type(schema)}</p>"
    required = set(schema.get("required") or ())
    rows = "".join(
        f"<tr><td><code>{escape(name)}</code>{' <span class=req>*</span>' if name in required else ''}</td>"
        f"<td>{_type(prop)}</td><td>{escape(str(prop.get('description', '')))} {_limits(prop)}</td></tr>"
        for name, prop in properties.items()
    )
    return f"<table><tr><th>field</th><th>type</th><th>meaning</th></tr>{rows}</table>"


def _operation(method: str, path: str, op: dict[str, Any], schemas: dict[str, Any]) -> str:
    parts = [
        f'<details id="{escape(op.get("operationId", ""))}"><summary><span class="m {method}">{method.upper()}</span>'
        f" <code>{escape(path)}</code> — {escape(op.get('summary', ''))}</summary>"
    ]
    if op.get("description"):
        parts.append(f"<p>{escape(op['description'])}</p>")
    if "security" not in op:
        parts.append("<p>No key needed.</p>")
    params = op.get("parameters") or []
    if params:
        rows = "".join(
            f"<tr><td><code>{escape(p['name'])}</code>{' <span class=req>*</span>' if p.get('required') else ''}</td>"
            f"<td>{escape(p['in'])}</td><td>{_type(p.get('schema') or {})}</td>"
            f"<td>{escape(p.get('description') or '')}</td></tr>"
            for p in params
        )
        parts.append(f"<table><tr><th>parameter</th><th>in</th><th>type</th><th>meaning</th></tr>{rows}</table>")
    for media, body in ((op.get("requestBody") or {}).get("content") or {}).items():
        schema = body.get("schema") or {}
        parts.append(f"<p>Body (<code>{escape(media)}</code>): {_type(schema)}</p>")
        target = schemas.get(str(schema.get("$ref", "")).rsplit("/", 1)[-1], schema)
        parts.append(_fields(target) if target.get("properties") else "")
    for status, answer in (op.get("responses") or {}).items():
        for media, body in (answer.get("content") or {}).items():
            shape = _type(body["schema"]) if body.get("schema") else "see the summary"
            parts.append(f"<p>{escape(status)} (<code>{escape(media)}</code>): {shape}</p>")
    parts.append("</details>")
    return "".join(parts)


def render_docs(spec: dict[str, Any]) -> str:
    info = spec.get("info") or {}
    schemas: dict[str, Any] = (spec.get("components") or {}).get("schemas") or {}
    by_tag: dict[str, list[str]] = {}
    for path, operations in (spec.get("paths") or {}).items():
        for method, op in operations.items():
            by_tag.setdefault((op.get("tags") or ["other"])[0], []).append(_operation(method, path, op, schemas))
    sections = "".join(f"<h2>{escape(tag)}</h2>{''.join(ops)}" for tag, ops in by_tag.items())
    described = "".join(
        f'<h3 id="schema-{escape(name)}">{escape(name)}</h3>'
        f"<p>{escape(str(schema.get('description', '')))}</p>{_fields(schema)}"
        for name, schema in sorted(schemas.items())
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(info.get('title', 'API'))} API reference</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(info.get('title', 'API'))} {escape(info.get('version', ''))}</h1>"
        f"<p>{escape(info.get('description', ''))} The machine-readable document is "
        '<a href="/openapi.json">/openapi.json</a>. Send keys as <code>Authorization: Bearer sk-aitp-…</code>.</p>'
        f"{sections}<h2>Schemas</h2>{described}</body></html>"
    )
