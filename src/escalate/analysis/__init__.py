"""Many runs of one scenario: parameter uncertainty across worlds and what drives the
headline (``worlds``), metrics over a grid of parameters (``sweep``), global and
one-at-a-time sensitivity (``sensitivity``).
"""
