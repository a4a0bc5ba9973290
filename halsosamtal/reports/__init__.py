"""Reports: the participation funnel, health outcomes and the reimbursement statement, as JSON
(API), CSV, terminal tables and one self-contained HTML file with charts.

Where each figure comes from is written in the module that computes it:
:mod:`.participation`, :mod:`.outcomes`, :mod:`.reimbursement`; small-cell suppression in
:mod:`.suppression`. Every figure is computed in Postgres in one set-based statement per report
(GROUPING SETS for the total and the breakdowns); Python only arranges the aggregated rows.
"""
