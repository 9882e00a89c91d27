"""`python -m bench [--quick] [--data DIR] [--output FILE]`: run every benchmark, print the ratios and
write them to bench/RESULTS.md."""

from bench.run import main

raise SystemExit(main())
