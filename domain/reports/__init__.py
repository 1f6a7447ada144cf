"""Reports: what each report type counts (datasets), how it is written (renderers), requests and schedules."""
