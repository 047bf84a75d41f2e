"""The shipped Grafana dashboards: generated from code, and valid for Grafana 11.6.

The schema check writes each dashboard's JSON into a TypeScript file as
``<json> satisfies StreamerDashboard`` (tests/node/dashboard-types.ts: Grafana's own types from
@grafana/schema 11.6.0) and runs ``tsc --noEmit --strict`` on it. Mutants of the dashboards
(an unknown key, a wrong type, a wrong enum value…) go in the same file under
``// @ts-expect-error``, so the run also fails if the check stops refusing them.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "streamer_dashboards", ROOT / "deploy" / "grafana" / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(name: str) -> dict[str, Any]:
    return json.loads((DASHBOARDS / name).read_text())  # type: ignore[no-any-return]


def _panels(d: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [p for p in d["panels"] if p["type"] == kind]


def test_committed_dashboards_are_what_the_generator_writes():
    gen = _generator()
    assert sorted(gen.DASHBOARDS) == sorted(p.name for p in DASHBOARDS.glob("*.json"))
    for name, build in gen.DASHBOARDS.items():
        assert (DASHBOARDS / name).read_text() == gen.render(build()), (
            f"{name} is out of date: run python deploy/grafana/generate.py"
        )


def test_every_panel_has_a_query_and_filters_on_topic_and_partition():
    for name in ("streamer-overview.json", "streamer-drift.json"):
        d = _load(name)
        assert [v["name"] for v in d["templating"]["list"]] == ["datasource", "topic", "partition"]
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids))
        for panel in d["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["targets"], panel["title"]
            assert panel["description"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"
                expr = target["expr"]
                # Per-partition series are filtered by the variables.
                for metric in ("streamer_events_total", "streamer_model_metric", "drift_"):
                    # (Process CPU is per worker: the cost figure divides it by all its events.)
                    if (
                        metric in expr
                        and "topic=~" not in expr
                        and "process_cpu_seconds_total" not in expr
                    ):
                        pytest.fail(f"{name}: {panel['title']!r} ignores $topic: {expr}")


# -- Grafana's schema ----------------------------------------------------------------------------


def _first(kind: str, mutate: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def apply(d: dict[str, Any]) -> None:
        mutate(_panels(d, kind)[0])

    return apply


# Each must be refused by tsc: what a hand edit or an SDK upgrade could get wrong.
MUTANTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "unknown dashboard key": lambda d: d.update(refesh="5s"),
    "unknown panel key": _first("timeseries", lambda p: p.update(titel="x")),
    "wrong type in gridPos": _first("stat", lambda p: p["gridPos"].update(h="4")),
    "wrong string enum value": _first(
        "state-timeline",
        lambda p: p["fieldConfig"]["defaults"]["thresholds"].update(mode="absolut"),
    ),
    "unknown key in timeseries options": _first(
        "timeseries", lambda p: p["options"]["legend"].update(placment="right")
    ),
    "wrong enum in stat options": _first("stat", lambda p: p["options"].update(graphMode="areas")),
    "unknown key in table options": _first("table", lambda p: p.update(options={"cellHight": 1})),
    "wrong value mapping": _first(
        "state-timeline", lambda p: p["fieldConfig"]["defaults"]["mappings"][0].update(type="val")
    ),
    "annotation without a query": lambda d: d["annotations"]["list"][0]["target"].pop("expr"),
    "unknown key in a custom field config": _first(
        "timeseries", lambda p: p["fieldConfig"]["defaults"]["custom"].update(lineWidht=2)
    ),
    "variable with an unknown key": lambda d: d["templating"]["list"][1].update(auto=True),
}


def _ts_file(dashboards: dict[str, dict[str, Any]]) -> str:
    lines = ['import type { StreamerDashboard } from "./dashboard-types.js";', ""]
    for i, (name, d) in enumerate(dashboards.items()):
        lines.append(f"// {name}")
        lines.append(
            f"export const dashboard{i} = {json.dumps(d, indent=2)} satisfies StreamerDashboard;"
        )
        lines.append("")
    base = dashboards["streamer-drift.json"]
    for i, (what, mutate) in enumerate(MUTANTS.items()):
        mutant = copy.deepcopy(base)
        if what == "unknown key in table options":
            mutant = copy.deepcopy(dashboards["streamer-overview.json"])
        mutate(mutant)
        # One line, so that the directive covers wherever in it tsc reports the error.
        lines.append(f"// @ts-expect-error {what}")
        lines.append(f"export const mutant{i} = {json.dumps(mutant)} satisfies StreamerDashboard;")
    return "\n".join(lines) + "\n"


def test_dashboards_pass_grafanas_schema(node_modules: Path):
    checks = node_modules / "checks"
    checks.mkdir(exist_ok=True)
    shutil.copyfile(ROOT / "tests" / "node" / "dashboard-types.ts", checks / "dashboard-types.ts")
    dashboards = {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}
    (checks / "dashboards.ts").write_text(_ts_file(dashboards))
    (checks / "tsconfig.json").write_text(
        json.dumps(
            {
                "compilerOptions": {
                    "strict": True,
                    "noEmit": True,
                    "module": "nodenext",
                    "moduleResolution": "nodenext",
                    "target": "es2022",
                    "skipLibCheck": True,
                    "types": [],
                },
                "files": ["dashboards.ts"],
            }
        )
    )
    tsc = node_modules / "node_modules" / ".bin" / "tsc"
    result = subprocess.run(
        [str(tsc), "-p", str(checks / "tsconfig.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
