"""Does a change keep the numbers? Every packaged experiment at smoke size, before and after.

Checks out ``--base`` (a git revision) into a temporary worktree, trains every experiment
that both trees package with ``dgm train NAME --smoke`` in each (same seeds, one thread,
``DGM_DATA_DIR`` as set), and compares the ``final_metrics.json`` files key by key (wall
times excepted). A refactoring that changes structure, not behaviour, gives "same" for
every row; anything else is listed with its old and new values.

    python benchmarks/same_numbers.py --base c471f7f [--out runs/same-numbers]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result

ROOT = Path(__file__).resolve().parents[1]


def experiments(src: Path) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "dgm", "list"],
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        check=True,
        cwd=src.parent,
    )
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def smoke(src: Path, name: str, out: Path, cache: Path) -> dict | None:
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "OMP_NUM_THREADS": "1",
        "XDG_CACHE_HOME": str(cache),
    }
    run = subprocess.run(
        [sys.executable, "-m", "dgm", "train", name, "--smoke", "--no-progress", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        cwd=src.parent,
    )
    if run.returncode != 0:
        return None
    return json.loads((out / "final_metrics.json").read_text())


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, help="the git revision to compare with")
    parser.add_argument("--out", type=Path, default=Path("runs/same-numbers"))
    args = parser.parse_args()
    rows, payload = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base), args.base],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            names = sorted(set(experiments(base / "src")) & set(experiments(ROOT / "src")))
            for name in names:
                old = smoke(base / "src", name, Path(tmp) / "old" / name, Path(tmp) / "cache")
                new = smoke(ROOT / "src", name, args.out / name, Path(tmp) / "cache")
                if old is None or new is None:
                    verdict = f"failed ({'before' if old is None else 'after'})"
                    diffs: dict = {}
                else:
                    a, b = flat(old), flat(new)
                    diffs = {
                        k: [a.get(k), b.get(k)]
                        for k in sorted(set(a) | set(b))
                        if a.get(k) != b.get(k) and "seconds" not in k and "per_second" not in k
                    }
                    verdict = (
                        "same"
                        if not diffs
                        else "; ".join(f"{k}: {x} -> {y}" for k, (x, y) in diffs.items())
                    )
                payload[name] = diffs
                rows.append(f"| {name} | {verdict} |")
                print(rows[-1], flush=True)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True
            )
    table = (
        f"Every experiment packaged both at `{args.base}` and now, trained with `dgm train NAME "
        "--smoke` in each tree (one thread, the same seeds); `final_metrics.json` compared "
        "key by key, wall times excepted.\n\n| experiment | before -> after |\n| --- | --- |\n"
        + "\n".join(rows)
    )
    path = write_result("same_numbers", {"base": args.base, "differences": payload}, table)
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
