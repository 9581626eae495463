"""The scenario held against what people know: weighted worlds shared by every step
(``posterior``), fitting to judgments about outcomes (``calibrate``), the odds given what has
happened (``nowcast``), what each option changes (``compare``).
"""
