"""Mutation score per module with mutmut 3 (docs/testing.md); never part of CI or pytest.

mutmut copies the source into `mutants/` next to pyproject.toml and mutates one function
at a time. This script runs it in a scratch copy of the repository (so the checkout gets no
`mutants/` folder), one module at a time with only the tests that module answers to, and
prints the score per module and the surviving mutants with their diffs:

    python benchmarks/mutation_score.py                      # every module in MODULES
    python benchmarks/mutation_score.py crf attention --max-children 2
    python benchmarks/mutation_score.py crf --report-only    # reprint the last results
    python benchmarks/mutation_score.py data --retest-survivors --retest-only

The score is killed (timeouts included) over killed + survived, as `mutmut export-cicd-stats`
counts it; mutants that no selected test reaches ("no tests") are listed separately.
Results (and mutmut's cache: a rerun retests only changed functions) stay in
`--workdir/<module>/mutants/`; `--fresh` starts over.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# module -> (files mutmut mutates, pytest arguments that select the tests run against them).
# The tests that train a model or load an export in a fresh process take 10-30 s each and
# would run for every mutant they reach; they are left out, so CRFModel (exercised only by
# them) shows up as "no tests" and is not part of the crf score.
MODULES = {
    "crf": (
        ["rnn_keras/crf.py"],
        ["tests/test_crf.py", "tests/test_crf_random.py", "-k", "not crf_model"],
    ),
    "attention": (
        ["rnn_keras/attention/*.py"],
        ["tests/test_attention.py", "tests/test_attention_options.py", "-k", "not fresh"],
    ),
    "decoding": (["rnn_keras/decoding.py"], ["tests/test_decoding.py", "-k", "not seq2seq"]),
    # The fused kernels run in training mode; the three gradient tests (against Keras's
    # layers over 50 steps, the states-only inference loop, and float64 finite differences)
    # reach every kernel and its backward pass in about 40 s of the 110 s that the whole of
    # test_recurrent.py and test_cells.py take on one thread.
    "kernels": (["rnn_keras/kernels.py"], ["tests/test_recurrent.py", "-k", "gradients"]),
    # The shared pipeline modules (apps/common/).
    "data": (
        ["apps/common/data.py"],
        [
            "tests/test_common_data.py",
            "tests/test_data_messages.py",
            "tests/test_data_loading.py",
            "tests/test_metrics.py",
            "tests/test_ner_data.py",
            "tests/test_sentiment_data.py",
            "tests/test_textgen_data.py",
            "tests/test_forecast_data.py",
        ],
    ),
    "export": (["apps/common/export.py"], ["tests/test_export.py"]),
    "metrics": (["apps/common/metrics.py"], ["tests/test_metrics.py", "tests/test_ner_metrics.py"]),
}
STATUS_LINE = re.compile(r"^\s*(?P<name>[\w.]+__mutmut_\d+): (?P<status>.+)$")


# Written into the scratch copy's tests/ only. mutmut wraps each mutated function in a
# trampoline `(*args, **kwargs)`; Keras's Operation.__new__ reads `getfullargspec(cls.__init__)`,
# which ignores __wrapped__ and fails on it. A __signature__ restores the real one (on
# __init__ only: Layer.build's shape-argument check expects the wrapper's `*args`).
CONFTEST = '''"""Mutation runs only (benchmarks/mutation_score.py): trampolines keep signatures."""

import inspect

from mutmut.mutation import trampoline

_wrap_in_trampoline = trampoline.wrap_in_trampoline


def _wrap_keeping_signature(mutants_dict, is_classmethod=False):
    decorate = _wrap_in_trampoline(mutants_dict, is_classmethod)

    def decorator(function):
        wrapped = decorate(function)
        if function.__name__ == "__init__":
            wrapped.__signature__ = inspect.signature(function)
        return wrapped

    return decorator


trampoline.wrap_in_trampoline = _wrap_keeping_signature
'''


def _toml_list(values):
    return "[" + ", ".join(json.dumps(value) for value in values) + "]"


def _without_xdist(match):
    options = re.sub(r"\s*(-n \S+|--dist \S+)", "", match[1])
    return f'addopts = "{options.strip()}"'


def prepare(workdir, files, tests, fresh):
    """Copies rnn_keras/, apps/, tests/ and pyproject.toml (its [tool.mutmut] narrowed) to workdir."""
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("rnn_keras", "apps", "tests"):
        target = workdir / folder
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(ROOT / folder, target, ignore=ignore)
    (workdir / "tests" / "conftest.py").write_text(CONFTEST)
    # copytree keeps modification times: mutmut regenerates the mutants of a source file
    # newer than its mutated copy and retests only the functions whose code changed.
    text = (ROOT / "pyproject.toml").read_text()
    section = text.index("[tool.mutmut]")
    end = text.find("\n[", section + 1)
    settings = text[section:] if end < 0 else text[section:end]
    settings = re.sub(r"only_mutate = \[[^\]]*\]", f"only_mutate = {_toml_list(files)}", settings)
    settings = re.sub(
        r"pytest_add_cli_args_test_selection = \[[^\]]*\]",
        f"pytest_add_cli_args_test_selection = {_toml_list(tests)}",
        settings,
    )
    text = text[:section] + settings + ("" if end < 0 else text[end:])
    # mutmut runs pytest inside its own forked workers: pytest-xdist's workers (the
    # suite's `-n 2`) would fail every mutant as "interrupted".
    text = re.sub(r'addopts = "([^"]*)"', _without_xdist, text)
    (workdir / "pyproject.toml").write_text(text)


def mutmut(workdir, *arguments, capture=False):
    environment = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        # One thread per TensorFlow pool: the workers run side by side on few cores.
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }
    command = [sys.executable, "-m", "mutmut", *arguments]
    return subprocess.run(
        command,
        cwd=workdir,
        env=environment,
        text=True,
        capture_output=capture,
        check=not capture,
    )


def results(workdir):
    listing = mutmut(workdir, "results", "--all", "true", capture=True).stdout
    statuses = {}
    for line in listing.splitlines():
        match = STATUS_LINE.match(line)
        if match:
            statuses[match["name"]] = match["status"].strip()
    return statuses


def report(module, workdir, statuses, seconds, show_diffs):
    counts = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    survived = counts.get("survived", 0)
    tested = killed + survived
    score = 100.0 * killed / tested if tested else float("nan")
    others = {k: v for k, v in counts.items() if k not in ("killed", "timeout", "survived")}
    timing = "" if seconds is None else f", {seconds / 60:.1f} min"
    print(
        f"\n{module}: {score:.1f}% ({killed} killed of {tested}; {survived} survived; "
        f"other: {others or 'none'}{timing})"
    )
    for name, status in sorted(statuses.items()):
        # Counted above; "no tests" and "not checked" are too many to list.
        if status in ("killed", "timeout", "no tests", "not checked"):
            continue
        print(f"  {status}: {name}")
        if show_diffs:
            diff = mutmut(workdir, "show", name, capture=True).stdout
            lines = [line for line in diff.splitlines() if line.startswith(("-", "+"))]
            for line in lines:
                if not line.startswith(("---", "+++")):
                    print(f"      {line}")
    return {"module": module, "score": score, "killed": killed, "survived": survived, **others}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=list(MODULES), choices=list(MODULES))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rnn_keras_mutation"))
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--fresh", action="store_true", help="drop earlier results first")
    parser.add_argument(
        "--retest-survivors", action="store_true", help="test earlier survivors again"
    )
    parser.add_argument("--report-only", action="store_true", help="print the last results")
    parser.add_argument(
        "--retest-only",
        action="store_true",
        help="with --retest-survivors: test only the earlier survivors, not the unchecked rest",
    )
    parser.add_argument("--no-diffs", action="store_true", help="list survivors without diffs")
    parser.add_argument("--json", type=Path, help="also write the scores to this file")
    options = parser.parse_args()
    summary = []
    for module in options.modules:
        files, tests = MODULES[module]
        workdir = options.workdir / module
        seconds = None
        if not options.report_only:
            prepare(workdir, files, tests, options.fresh)
            # mutmut keeps a verdict until the function changes; after adding tests, name
            # the survivors to test them again.
            # A stopped run leaves mutants "interrupted", with no verdict: test them again.
            again = {"check was interrupted by user"}
            if options.retest_survivors:
                # Timeouts too: a run paused or starved of CPU times out mutants that a
                # test would have killed or not.
                again.update(("survived", "timeout"))
                # mutmut maps tests to the functions they reach once, and a test added
                # later stayed unmapped (it ran against no mutant): collect them again.
                (workdir / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
            names = []
            if (workdir / "mutants").exists():
                names = [n for n, s in results(workdir).items() if s in again]
            start = time.perf_counter()
            children = ("--max-children", str(options.max_children))
            if names:
                mutmut(workdir, "run", *children, *names)
            if not options.retest_only:
                mutmut(workdir, "run", *children)
            seconds = time.perf_counter() - start
        statuses = results(workdir)
        summary.append(report(module, workdir, statuses, seconds, not options.no_diffs))
    print("\nmodule       score  killed  survived")
    for row in summary:
        print(f"{row['module']:<11} {row['score']:5.1f}%  {row['killed']:6d}  {row['survived']:8d}")
    if options.json:
        options.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
