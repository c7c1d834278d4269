"""Results for staff (docs/results.md): counts, breakdowns, the funnel and exports, shared by
the console's Results pages and ``voxpop results``.

- :mod:`bot.results.filters` what a view covers (consultation, version, days, status);
- :mod:`bot.results.queries` the SQL, grouped in the database;
- :mod:`bot.results.tables` the arithmetic on grouped counts, and the small-group rule;
- :mod:`bot.results.export` the CSV, JSONL and XLSX files;
- :mod:`bot.results.service` :class:`Results`, the use cases.
"""
