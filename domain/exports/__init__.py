"""Journal exports: numbered, immutable export batches of a closed month's journals, in our own journal CSV,
Xero's manual journal import, QuickBooks Online's journal entry import and DATEV's booking batch, each made once by
a workflow (workflows/exports.py) and downloaded like a report."""
