"""Finance reports: the queries behind each screen, and their CSV and XLSX exports.

* :mod:`~donations.staff.reports.filters` -- the filters of a report, parsed from the
  query string the same way for the screen and for the download;
* :mod:`~donations.staff.reports.sql` -- the SQL toolkit the reports share;
* one module per report (:mod:`~donations.staff.reports.ledger`, ``monthly``,
  ``plans``, ``payouts``, ``funnel``, ``supporters``), each taking those filters
  and yielding typed rows (plus the totals shown on screen);
* :mod:`~donations.staff.reports.catalogue` -- the list of reports;
* :mod:`~donations.staff.reports.exporters` -- streaming CSV and XLSX, with
  spreadsheet formula injection neutralised, and PostgreSQL's own ``COPY``
  for the donations ledger;
* :mod:`~donations.staff.reports.views` -- ``/staff/reports/...``.
"""
