"""Benchmarks of the search tool against the baselines named in its issue: Tune overhead, the data
path, the frozen-prefix cache, search efficiency and CPU use. Run all of them with
`python -m bench [--quick] [--data DIR] [--output FILE]`; every result is a ratio against a baseline
measured in the same run, so other jobs on the machine slow both sides alike.
"""

import os

# before anything imports ray: no usage reporting, the classic (quiet) Tune output
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
