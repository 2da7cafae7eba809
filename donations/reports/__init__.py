"""Finance reports: the queries behind each screen, and their CSV and XLSX exports.

* :mod:`~donations.reports.filters` -- the filters of a report, parsed from the
  query string the same way for the screen and for the download;
* :mod:`~donations.reports.queries` -- one query function per report, taking
  those filters and yielding typed rows (plus the totals shown on screen);
* :mod:`~donations.reports.exporters` -- streaming CSV and XLSX, with
  spreadsheet formula injection neutralised, and PostgreSQL's own ``COPY``
  for the donations ledger;
* :mod:`~donations.reports.views` -- ``/staff/reports/...``.
"""
