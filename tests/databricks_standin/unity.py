"""Unity Catalog objects in the stand-in: catalogs, schemas, external locations, grants."""

from __future__ import annotations

import threading
from typing import Any

_KEYS = {"catalogs": "name", "schemas": "full_name", "external-locations": "name"}


class UnityCatalogState:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in _KEYS}
        self.privileges: dict[tuple[str, str], dict[str, set[str]]] = {}
        self.lock = threading.Lock()

    def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        if kind == "schemas":
            body = {**body, "full_name": f"{body['catalog_name']}.{body['name']}"}
        name = body[_KEYS[kind]]
        with self.lock:
            if name in self.objects[kind]:
                raise FileExistsError(name)
            self.objects[kind][name] = body
        return body

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return self.objects[kind][name]

    def grants(self, kind: str, name: str) -> dict[str, Any]:
        held = self.privileges.get((kind, name), {})
        return {
            "privilege_assignments": [
                {"principal": p, "privileges": sorted(privileges)}
                for p, privileges in sorted(held.items())
                if privileges
            ]
        }

    def update_grants(self, kind: str, name: str, changes: list[dict[str, Any]]) -> dict:
        with self.lock:
            held = self.privileges.setdefault((kind, name), {})
            for change in changes:
                privileges = held.setdefault(change["principal"], set())
                privileges |= set(change.get("add", []))
                privileges -= set(change.get("remove", []))
        return self.grants(kind, name)
