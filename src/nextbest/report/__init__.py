"""Reports and figures: the report face of nextbest.

    nextbest.report.figures   one function per figure: takes the plain dict from a JSON output, writes a PNG
    nextbest.report.crm       write_crm_report(run_dir, eval_dir, out): one self-contained HTML file (+ JSON)
    nextbest.report.targeting write_targeting_report(evaluations, uplift_dir, out): targeting + uplift HTML (+ JSON)
    nextbest.report.loop      write_loop_report(result, out_dir): one turn of the learning loop, HTML (+ JSON)
    nextbest.report.html      the HTML building blocks both reports share

Names are imported lazily so that `import nextbest.report` does not load matplotlib.
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "write_crm_report": "nextbest.report.crm",
    "write_targeting_report": "nextbest.report.targeting",
    "write_loop_report": "nextbest.report.loop",
    "training_curves": "nextbest.report.figures",
    "action_flow": "nextbest.report.figures",
    "calibration_chart": "nextbest.report.figures",
    "policy_comparison": "nextbest.report.figures",
    "sensitivity_chart": "nextbest.report.figures",
}


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nextbest.report' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
