"""Numbers as people read them (``format``), figures (``plots``) and the self-contained HTML
report of a run folder (``report``). Nothing here runs an engine: it draws and writes results.
"""
