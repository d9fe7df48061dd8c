"""The README's ```console examples as (command, expected stdout lines); stdlib only, so that
.ci/wheel_smoke.py can run them against an installed wheel as tests/cli/test_readme_examples.py runs them in-process."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
# ```console torch: an example of the transformers path (needs torch + transformers; not run against the torch-free wheel)
BLOCK = re.compile(r"^```console( torch)?\n(.*?)^```", re.S | re.M)


def trim(lines: list[str]) -> list[str]:
    """Lines right-trimmed, without leading or trailing blank lines."""
    lines = [line.rstrip() for line in lines]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def examples(readme: Path = README, with_torch: bool = True) -> list[tuple[str, list[str]]]:
    """(command, expected stdout lines) for every `$ oomplan ...` line of every console block
    (`with_torch=False`: not those of ```console torch blocks)."""
    found = []
    for torch_block, block in BLOCK.findall(readme.read_text(encoding="utf-8")):
        if torch_block and not with_torch:
            continue
        command, expected = None, []
        for line in block.splitlines():
            if line.startswith("$ "):
                if command:
                    found.append((command, trim(expected)))
                command, expected = line[2:].strip(), []
            else:
                expected.append(line)
        if command:
            found.append((command, trim(expected)))
    return found
