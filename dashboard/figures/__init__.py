"""Pure figure builders: tidy frames from ``analysis`` in, plotly figures out (no Dash, no I/O).

One module per page; ``common`` holds the palette and shared pieces.
"""
