"""Reports rendered from a :class:`~pytest_energy.record.RunRecord`; they read the record only.

- :mod:`.overview`: what every report leads with (the verdict, counts, totals, labels).
- :mod:`.format`: numbers, units and Markdown escaping, the same in every report.
- :mod:`.terminal`: the ``energy`` section pytest prints after its summary.
- :mod:`.markdown`: the GitHub job summary and the pull-request comment.
- :mod:`.annotations`: GitHub workflow commands at the tests that changed.
- :mod:`.export`: github-action-benchmark JSON and CSV.
- :mod:`.trend`: the energy history as a text table with sparklines.
- :mod:`.html`: the self-contained HTML page (Jinja, assets, CSP), built from the view
  models of :mod:`.html_views`, the methodology section of :mod:`.html_methodology`
  and the chart geometry of :mod:`.html_charts`.

Each renderer is imported only when asked for: ``html`` pulls in Jinja.
"""
