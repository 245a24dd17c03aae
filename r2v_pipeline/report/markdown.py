"""report.md: the run as a person reads it in a terminal, a merge request or a mail."""

from __future__ import annotations

from typing import Any

from ..run.states import ShotStatus
from .build import money_text

_MARK = {
    ShotStatus.DOWNLOADED: "✅", ShotStatus.SKIPPED: "⏭", ShotStatus.COPIED: "⧉", ShotStatus.REUSED: "♻", ShotStatus.FAILED: "❌",
    ShotStatus.HELD: "⏸", ShotStatus.AMBIGUOUS: "❓", ShotStatus.EXPIRED: "⌛", ShotStatus.UNFINISHED: "…", ShotStatus.UNSENT: "⇢",
    ShotStatus.ELSEWHERE: "↪", ShotStatus.UNSELECTED: "·",
}  # fmt: skip


_SOURCE = {"provider": "provider usage", "plan": "planned figures", "provider+plan": "provider usage and planned figures", "none": "nothing billed"}


def render_markdown(report: dict[str, Any]) -> str:
    run, totals = report["run"], report["totals"]
    currency = totals["currency"]
    lines = [
        "# r2v run report",
        "",
        f"- finished {run['finished']} after {run['seconds']:.0f} s" + (" (simulated)" if run["simulated"] else "") + (", **interrupted**" if run["interrupted"] else ""),
        f"- manifests: {', '.join(run['manifests'])}",
        f"- shots: {totals['shots']}, done: {totals['done']} — " + ", ".join(f"{n} {s}" for s, n in totals["by_status"].items()),
        f"- this run: {totals['billed_seconds_this_run']} s billed, {money_text(totals['cost_this_run'], currency)}",
    ]
    for name, spend in report.get("episodes_to_date", {}).items():
        lines.append(
            f"- this episode to date ({name}): {spend['billed_seconds']} s billed, {money_text(spend['cost'], currency)} "
            f"over {spend['tasks']} task(s) ({_SOURCE[spend['source']]})"
        )  # fmt: skip
    if totals["held_back_seconds"]:
        lines.append(f"- held back by the budget: {totals['held_back_seconds']} billed seconds")
    lines.append(f"- exit code {run['exit_code']}")
    for cut in report.get("cuts", []):
        editors = ", ".join(f"[{t['path']}]({t['path']})" for t in cut["timelines"])
        stale = "" if cut["current"] else " (older than the takes picked now)"
        lines.append(f"- cut of {cut['episode']}: [{cut['video']}]({cut['video']}){stale}" + (f"; for editors: {editors}" if editors else ""))
    episodes: dict[str, list[dict[str, Any]]] = {}
    for shot in report["shots"]:
        episodes.setdefault(f"{shot['series']}/{shot['episode']}", []).append(shot)
    for name, shots in episodes.items():
        lines += ["", f"## {name}", "", "| shot | status | billed s | cost | task | video | reason |", "|---|---|---:|---:|---|---|---|"]
        for s in shots:
            review = s.get("review") or {}
            marks = (["picked"] if s["take"] is not None and review.get("picked") else []) + ([review["verdict"]] if review.get("verdict") else [])
            title = s["shot"] + (f" #{s['take']}" if s["take"] is not None else "") + (f" ({', '.join(marks)})" if marks else "")
            video = f"[{s['output']}]({s['output']})" if s["output"] else ""
            lines.append(
                f"| {_cell(title)} | {_MARK.get(ShotStatus(s['status']), '')} {s['status']} | {s['billed_seconds']} | "
                f"{money_text(s['cost'], currency)} | {_cell(s['task_id'] or '')} | {video} | {_cell(s['reason'])} |"
            )
    accounts = report.get("accounts") or []
    if len(accounts) > 1 or any(a["lost"] for a in accounts):
        lines += ["", "## Accounts", "", "| account | slots | shots | billed s | cost | out of the pool |", "|---|---:|---:|---:|---:|---|"]
        lines += [
            f"| {_cell(a['account'])} | {a['slots']} | {a['shots']} | {a['billed_seconds_this_run']} | {money_text(a['cost_this_run'], currency)} | "
            f"{_cell(a['lost'] or '')} |"
            for a in accounts
        ]
    if report.get("recovered"):
        lines += ["", "## Recovered from earlier runs", ""]
        lines += [f"- {r['key']} (task {r['task_id']}): {r['state']}" + (f" → [{r['output']}]({r['output']})" if r["output"] else "") for r in report["recovered"]]
    remade = [s for s in report["shots"] if s.get("changes")]
    if remade:
        lines += ["", "## Made again: what changed", ""]
        for s in remade:
            lines.append(f"- **{s['key']}**")
            lines += [f"  - `{_cell(change)}`" for change in s["changes"]]
    problems = [s for s in report["shots"] if ShotStatus(s["status"]).needs_attention or (s.get("review") or {}).get("pick_from") == "none"]
    lost = [a for a in accounts if a["lost"]]
    if problems or lost:
        lines += ["", "## Needs attention", ""]
        lines += [f"- **account {a['account']}** was taken out of the pool: {a['lost']}; its queued shots went to the other accounts" for a in lost]
        lines += [f"- **{s['key']}** ({s['status']}): {s['reason']}" for s in problems]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
