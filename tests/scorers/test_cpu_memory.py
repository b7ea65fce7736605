"""reuse_freed_memory: freed tensors' pages are reused instead of page-faulted in again."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, resource, sys
import torch
from pipeline.scorers.cpu_memory import reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[1] == "on" else False
torch.ones(32 << 20).sum()  # 128 MiB: allocated, touched, freed
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.ones(24 << 20).sum()  # 96 MiB: fits in the freed block
print(json.dumps({"applied": applied, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_second_large_allocation_reuses_pages():
    off, on = probe("off"), probe("on")
    pages = (96 << 20) // 4096
    assert off["faults"] > pages // 2, "glibc default: a 96 MiB block is mmapped afresh and faults in"
    assert on["applied"] is True
    assert on["faults"] < pages // 20, "with the setting the freed block's pages are reused"


def test_idempotent_and_harmless_to_call_twice():
    from pipeline.scorers.cpu_memory import reuse_freed_memory

    assert reuse_freed_memory() == reuse_freed_memory()
