"""The optimiser's report (report.json) from its search, and its Markdown table (report.md) rendered from the report.

Every baseline the report lists (each source's output alone on cached pairs, each greedy addition, each source alone
through the same search, each component alone, every ablation line of the plan, the second stage's steps) is a plan
the search evaluated or could choose, beside the final CV of the plan.
"""

from lib.matching import tuning
from lib.second_stage import pair_stage


def report(
    *,
    runs: list,
    encoders: dict,
    rows: int,
    candidate_pairs: int,
    single: dict,
    greedy: dict[str, list[dict]],
    searches: dict[str, dict],
    chosen: str,
    ablation: dict[str, float],
    stage: pair_stage.Fitted | None,
    stage_seconds: float,
    plan: dict,
) -> dict:
    """The report of a search.

    Args:
        runs: the training runs (lib.data.oof.Run); encoders: the frozen encoders' plan entries by name.
        rows: the rows searched on; candidate_pairs: the cached pairs of every source's output.
        single: each source's output alone (lib.matching.ensemble.step); greedy: each output's greedy additions.
        searches: each search by name ("ensemble", "<source> alone"): its "tuning" (lib.matching.tuning.Tuning),
            "blends" and "search_seconds"; chosen: the plan's.
        ablation: the chosen search's rules changed one at a time (lib.matching.thresholds.ablation).
        stage: the second stage fitted on the chosen search's pairs (None when not fitted), in `stage_seconds`.
        plan: the inference config (lib.inference.tuned_plan.plan): it uses the stage where it names one.
    """
    search = searches[chosen]["tuning"]
    alone = tuning.best_thresholds(search.curves)
    used_stage = "pair_stage" in plan
    return {
        "runs": {run.name: {"split": run.split, "cv": run.metrics["best"]["cv"]} for run in runs},
        "encoders": encoders,
        "rows": rows,
        "candidate_pairs": candidate_pairs,
        "single": single,
        "greedy": greedy,
        "components": {name: {"f1": float(search.curves[name].max()), "threshold": alone[name]} for name in alone},
        "blends": searches[chosen]["blends"],
        "same_search": {name: found["tuning"].f1 for name, found in searches.items()},
        "search_seconds": {name: round(found["search_seconds"], 1) for name, found in searches.items()},
        "ablation": ablation,
        "pair_stage": None
        if stage is None
        else {
            "pairs": len(stage.scored.scores),
            "features": len(stage.scored.names),
            "seconds": round(stage_seconds, 1),
            "rules_cv": search.f1,
            "cv": stage.f1,
            "used": used_stage,
            "steps": stage.steps,
        },
        "final": {
            "plan": chosen,
            "cv": stage.f1 if used_stage else search.f1,
            "matching": search.config,
            "pair_stage": plan.get("pair_stage", {}).get("graph"),
        },
    }


def markdown(report: dict, split: str) -> str:
    """The report as a Markdown table of every step's CV F1 and threshold, headed by its rows (`split`: what they
    are), runs and encoders."""
    runs, chosen, stage, final = report["runs"], report["final"]["plan"], report["pair_stage"], report["final"]
    lines = [f"CV on {report['rows']} rows ({split}) of {len(runs)} runs and {len(report['encoders'])} encoders", ""]
    lines += ["| step | CV F1 | threshold |", "|---|---:|---:|"]
    lines += [
        f"| {name} alone (cached pairs) | {s['f1']:.4f} | {s['threshold']} |" for name, s in report["single"].items()
    ]
    lines += [f"| {name}: its own union (metrics.json) | {run['cv']:.4f} | |" for name, run in runs.items()]
    for output, steps in report["greedy"].items():
        lines += [
            f"| {output}: + {s['added']} (share {s['share']}) | {s['f1']:.4f} | {s['threshold']} |" for s in steps
        ]
    lines += [
        f"| {name} through the whole search ({report['search_seconds'][name]:.0f} s) | {f1:.4f} | |"
        for name, f1 in report["same_search"].items()
    ]
    for name, component in report["components"].items():
        blend = report["blends"].get(name)
        lines += [
            f"| {chosen}: component {name} alone (blend {blend}) | {component['f1']:.4f} | {component['threshold']} |"
        ]
    lines += [f"| {chosen}: {name} | {score:.4f} | |" for name, score in report["ablation"].items() if name != "tuned"]
    if stage is not None:
        lines += [f"| rules only: the plan's union | {stage['rules_cv']:.4f} | |"]
        lines += [
            f"| pair stage ({stage['pairs']} pairs, {stage['seconds']:.0f} s): {s['step']}"
            f"{'' if s['kept'] else ' (not kept)'} | {s['f1']:.4f} | {s.get('threshold', '')} |"
            for s in stage["steps"]
        ]
    final_by = "pair stage" if stage is not None and stage["used"] else ", ".join(final["matching"]["components"])
    lines += [f"| **final CV** ({chosen}: {final_by}) | **{final['cv']:.4f}** | |"]
    return "\n".join(lines) + "\n"
