"""The run as JUnit XML: one test case per shot, so CI dashboards show which shots failed.

A shot whose video is on disk passes (made now or before); one that failed,
expired, is ambiguous or unfinished fails, carrying the provider's code and
message; one held back by a budget, held by another run or not selected is
skipped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ..run.states import ShotStatus



def junit_xml(report: dict[str, Any]) -> ET.ElementTree:
    suites = ET.Element("testsuites", name="r2v run")
    episodes: dict[str, list[dict[str, Any]]] = {}
    for shot in report["shots"]:
        episodes.setdefault(f"{shot['series']}/{shot['episode']}", []).append(shot)
    for name, shots in episodes.items():
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=name,
            tests=str(len(shots)),
            failures=str(sum(_failing(s) for s in shots)),
            skipped=str(sum(ShotStatus(s["status"]).skipped for s in shots)),
            errors="0",
            timestamp=report["run"]["started"],
            time=f"{sum(_seconds(s) for s in shots):.3f}",
        )
        for shot in shots:
            _case(suite, shot)
    total = report["shots"]
    suites.set("tests", str(len(total)))
    suites.set("failures", str(sum(_failing(s) for s in total)))
    suites.set("skipped", str(sum(ShotStatus(s["status"]).skipped for s in total)))
    suites.set("time", f"{report['run']['seconds']:.3f}")
    ET.indent(suites)
    return ET.ElementTree(suites)


def _case(suite: ET.Element, shot: dict[str, Any]) -> None:
    name = shot["shot"] + (f" (take {shot['take']})" if shot["take"] else "")
    case = ET.SubElement(suite, "testcase", classname=f"{shot['series']}.{shot['episode']}", name=name, time=f"{_seconds(shot):.3f}")
    properties = ET.SubElement(case, "properties")
    for key in ("status", "task_id", "model", "billed_seconds", "cost", "fingerprint", "manifest"):
        if shot.get(key) is not None:
            ET.SubElement(properties, "property", name=key, value=str(shot[key]))
    status = ShotStatus(shot["status"])
    if status.failing:
        code = shot["code"] or shot["status"]
        failure = ET.SubElement(case, "failure", type=code, message=f"{shot['status']}: {shot['reason']}")
        failure.text = f"{shot['key']} {shot['status']}\n{shot['reason']}\ntask: {shot['task_id'] or '-'}"
    elif shot["billing"]["differs"]:
        billing = shot["billing"]
        message = f"billed {billing['billed']} s where the plan said {billing['planned']} s"
        failure = ET.SubElement(case, "failure", type="BilledDifferently", message=message)
        failure.text = f"{shot['key']}: {message} (task {shot['task_id'] or '-'}): a price table or a guess is wrong"
    elif status.skipped:
        ET.SubElement(case, "skipped", message=shot["reason"])
    if shot["output"]:
        ET.SubElement(case, "system-out").text = f"video: {shot['output']}"


def _failing(shot: dict[str, Any]) -> bool:
    return ShotStatus(shot["status"]).failing or shot["billing"]["differs"]


def _seconds(shot: dict[str, Any]) -> float:
    return float(shot["timings"].get("generation_seconds") or 0.0)


def write_junit(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    junit_xml(report).write(path, encoding="utf-8", xml_declaration=True)
