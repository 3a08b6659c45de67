"""make test's last lines: each pytest run's count and the total (their JUnit XML files), e.g.
`junit-main.xml: 612 passed, 0 failed, 1 skipped` ... `total: 1064 passed, 0 failed, 3 skipped`."""
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

totals = [0, 0, 0]  # passed, failed, skipped
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        print(f"(no results in {path})")
        continue
    tests = failed = skipped = 0
    for suite in root.iter("testsuite"):
        tests += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    run = (tests - failed - skipped, failed, skipped)
    totals = [a + b for a, b in zip(totals, run)]
    print(f"{Path(path).name}: {run[0]} passed, {run[1]} failed, {run[2]} skipped")
print(f"total: {totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")
