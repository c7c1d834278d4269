"""The role matrix: which role each console page needs, read from the views themselves
(``required_role``, set by :func:`bot.console.access.requires`), so the table in
docs/console.md cannot drift from the code (a test compares them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from flask import Flask

from bot.staff.accounts import Role

_SHOWN_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class RouteRole:
    path: str
    methods: tuple[str, ...]
    role: Role
    endpoint: str


def role_matrix(app: Flask) -> list[RouteRole]:
    """Every console route with the role it needs, in path order."""
    found = []
    for rule in app.url_map.iter_rules():
        role = getattr(app.view_functions[rule.endpoint], "required_role", None)
        if not isinstance(role, Role):
            continue
        methods = tuple(m for m in _SHOWN_METHODS if m in (rule.methods or ()))
        found.append(RouteRole(rule.rule, methods, role, rule.endpoint))
    return sorted(found, key=lambda r: (r.path, r.methods))


def markdown_table(app: Flask) -> str:
    """The matrix as the Markdown table docs/console.md shows."""
    lines = [
        "| Address | Methods | Analyst | Editor | Admin |",
        "| --- | --- | --- | --- | --- |",
    ]
    for route in role_matrix(app):
        marks = " | ".join("yes" if role.allows(route.role) else "no" for role in Role)
        lines.append(f"| `{route.path}` | {', '.join(route.methods)} | {marks} |")
    return "\n".join(lines) + "\n"
