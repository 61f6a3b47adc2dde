"""The shipped recording and alert rules, unit-tested with ``promtool test rules``.

Every file under ``tests/promtool/`` loads the generated rule file
(``deploy/prometheus/smtpeter-exporter.rules.yml``, named relative to the test file and used
unchanged), feeds it series shaped like the exporter's own, and states when each alert fires,
with which labels and annotations, and when it must stay quiet. One test per file, so a failure
names the file; promtool's report (which case, expected and got) is the assertion message.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, require_tool

PROMTOOL_TESTS = PROJECT_ROOT / "tests" / "promtool"
TEST_FILES = sorted(PROMTOOL_TESTS.glob("*.yml"))


def test_promtool_test_files_exist() -> None:
    assert TEST_FILES, f"no promtool unit tests found under {PROMTOOL_TESTS}"


@pytest.mark.tools
@pytest.mark.slow
@pytest.mark.parametrize("test_file", TEST_FILES, ids=[path.name for path in TEST_FILES])
def test_promtool_unit_tests_pass(test_file: Path) -> None:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"promtool test rules {test_file.relative_to(PROJECT_ROOT)} failed "
        f"(exit status {result.returncode}):\n{result.stdout}{result.stderr}"
    )
