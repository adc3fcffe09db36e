"""A/B in one job: ``pytest-energy ab`` measures the base commit and the head interleaved.

The controller (:mod:`.command`, :mod:`.comparison`, :mod:`.controller`) checks
the base out into a temporary git worktree, starts long-lived pytest workers in
each tree (:mod:`.workers`, running the plugin :mod:`.worker`), alternates the
rounds of every ``energy_benchmark`` test present in both trees, and judges the
paired log ratios head/base (:mod:`.judge`) into a results file of the usual
schema (:mod:`.results`). ``docs/ab.md`` explains the method.

Nothing is imported here: workers load :mod:`.worker` with ``-p`` and must stay light.
"""
