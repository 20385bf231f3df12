"""Reports from records only: PNG plots (``plots``) and markdown reports (``markdown``)."""
